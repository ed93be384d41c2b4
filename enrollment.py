"""Enrollment: each speaker's stored embedding, one ``<speaker>.pth`` file per speaker.

A speaker's enrollment is the sum of its enrollment files' (normalised) embeddings, a (1, E)
tensor, as in the tutorial. Files are written atomically. ``enrolled_with.txt`` beside them
names the model that made them, so that scoring with another model (retrained, or whitened
after enrolling) is refused instead of giving meaningless scores.
"""
import hashlib
import os

import pandas as pd
import torch
import torch.nn as nn

from checkpoint import WHITENING_KEY
from cli import SetupError
from DB_wav_reader import read_feats_structure
from embedding import embed_files
from fileio import atomic_path, load_torch, save_torch

MODEL_FILE = 'enrolled_with.txt'


def model_fingerprint(checkpoint: dict) -> str:
    """A short hash of everything that decides the embedding: the weights, the whitening and
    whole-utterance embedding."""
    digest = hashlib.sha1(b'whole_utterance' if checkpoint.get('whole_utterance') else b'')
    tensors = dict(checkpoint['state_dict'])
    for name, value in (checkpoint.get(WHITENING_KEY) or {}).items():
        if isinstance(value, torch.Tensor):
            tensors['whitening.' + name] = value
    for name in sorted(tensors):
        digest.update(name.encode())
        digest.update(tensors[name].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def check_enrolled_with(embedding_dir: str, checkpoint: dict) -> None:
    """SetupError when enroll.py recorded another model than this checkpoint's (folders from
    before the record, like the tutorial's, are not checked)."""
    path = os.path.join(embedding_dir, MODEL_FILE)
    if not os.path.isfile(path):
        return
    with open(path) as f:
        recorded = f.read().split()
    if recorded and recorded[0] != model_fingerprint(checkpoint):
        raise SetupError(f'{embedding_dir}: enrolled with another model (recorded: '
                         f'{" ".join(recorded[1:])}) than the one loaded now; run enroll.py '
                         'again with this model')


def split_enroll_and_test(feat_dir: str) -> tuple:
    """Tables of the enrollment files (named ``enroll.p``) and the others (for testing)."""
    table = read_feats_structure(feat_dir)
    is_enroll = table['filename'].map(lambda f: os.path.basename(f) == 'enroll.p')
    return table[is_enroll].reset_index(drop=True), table[~is_enroll].reset_index(drop=True)


def sum_per_speaker(speaker_ids: list, embeddings: torch.Tensor) -> dict:
    """{speaker: (1, E) sum of its files' embeddings}: a speaker's enrollment."""
    enrolled = {}
    for speaker, emb in zip(speaker_ids, embeddings):
        enrolled[speaker] = enrolled.get(speaker, 0) + emb.unsqueeze(0)  # (1, E)
    return enrolled


def enroll_speakers(model: nn.Module, enroll_table: pd.DataFrame, embedding_dir: str,
                    test_frames: int, device: torch.device, checkpoint: dict = None) -> dict:
    """Embed every enrollment file, sum per speaker, save ``<speaker>.pth`` (and, given the
    checkpoint, which model made them); return them."""
    if enroll_table.empty:
        raise SetupError('no enrollment files (enroll.p) to enroll')
    print('Start to aggregate all the d-vectors per enroll speaker')
    embeddings = embed_files(model, list(enroll_table['filename']), test_frames, device)
    for speaker in enroll_table['speaker_id']:
        print(f'Aggregates the activation (spk : {speaker})')
    enrolled = sum_per_speaker(list(enroll_table['speaker_id']), embeddings)
    for speaker, emb in enrolled.items():
        save_torch(emb, os.path.join(embedding_dir, speaker + '.pth'))
        print(f'Save the embeddings for {speaker}')
    if checkpoint is not None:
        with atomic_path(os.path.join(embedding_dir, MODEL_FILE)) as tmp:
            with open(tmp, 'w') as f:
                f.write(f'{model_fingerprint(checkpoint)} checkpoint epoch '
                        f'{checkpoint.get("cp_num", "?")}\n')
    return enrolled


def load_enrollments(embedding_dir: str, speakers: list = None) -> tuple:
    """(speaker ids, (N, E) tensor) from ``embedding_dir``; all speakers or those listed."""
    if not os.path.isdir(embedding_dir):
        raise SetupError(f'{embedding_dir}: enrollment folder not found (run enroll.py first)')
    available = sorted(f[:-4] for f in os.listdir(embedding_dir) if f.endswith('.pth'))
    if not available:
        raise SetupError(f'{embedding_dir}: no enrolled speakers (*.pth); run enroll.py first')
    speakers = list(speakers) if speakers else available
    unknown = [s for s in speakers if s not in available]
    if unknown:
        raise SetupError(f'speaker {", ".join(unknown)} is not enrolled in {embedding_dir}; '
                         'enrolled: ' + ', '.join(available))
    embeddings = [load_torch(os.path.join(embedding_dir, s + '.pth')).reshape(1, -1)
                  for s in speakers]
    return speakers, torch.cat(embeddings)  # (N, E)


def find_test_file(test_feat_dir: str, speaker: str, name: str = 'test.p') -> str:
    """``<test_feat_dir>/<speaker>/test.p``; SetupError listing the speakers that have one."""
    path = os.path.join(test_feat_dir, speaker, name)
    if not os.path.isfile(path):
        have = sorted(d for d in os.listdir(test_feat_dir)
                      if os.path.isfile(os.path.join(test_feat_dir, d, name))) \
            if os.path.isdir(test_feat_dir) else []
        raise SetupError(f'test_speaker={speaker!r}: no {path}; speakers with a {name}: '
                         + (', '.join(have) or f'none ({test_feat_dir} has none)'))
    return path
