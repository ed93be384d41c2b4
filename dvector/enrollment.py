"""Enrollment: each speaker's stored embedding, one ``<speaker>.pth`` file per speaker.

A speaker's enrollment is the sum of its enrollment files' (normalised) embeddings, a (1, E)
tensor, as in the tutorial (enroll.py's enroll_per_spk). A model's enrollments are one set: they
are written together into a new folder that then replaces the old one whole, with
``enrolled_with.txt``, the record of the model that made them and of the speakers in the set.
Scoring with another model (retrained, or whitened after enrolling) is refused instead of
giving meaningless scores, and so is a speaker file the record does not cover.
"""
import glob
import hashlib
import os
import shutil
import tempfile

import torch

from configure import SetupError
from DB_wav_reader import read_DB_structure, read_feats_structure
from dvector.checkpoint import WHITENING_KEY
from dvector.fileio import give_usual_permissions, load_torch, save_torch

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


def read_record(embedding_dir: str) -> tuple:
    """(fingerprint, model description, speakers) from the folder's record; None if it has none
    (a folder from before the record, like the tutorial's, is not checked)."""
    path = os.path.join(embedding_dir, MODEL_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding='utf-8') as f:
            first, *speakers = f.read().splitlines()
        fingerprint, _, model = first.partition(' ')
    except (UnicodeDecodeError, ValueError):
        raise SetupError(f'{path}: not a record written by enroll.py; run enroll.py again') \
            from None
    return fingerprint, model, [s for s in speakers if s]


def save_enrollment_set(embeddings: dict, embedding_dir: str, checkpoint: dict) -> None:
    """Write ``<speaker>.pth`` for every speaker of ``embeddings`` and the record into a new
    folder, then put it in the place of ``embedding_dir`` (the old set goes whole)."""
    parent = os.path.dirname(os.path.abspath(embedding_dir))
    name = os.path.basename(os.path.abspath(embedding_dir))
    foreign = [f for f in os.listdir(embedding_dir)
               if not f.endswith('.pth') and f != MODEL_FILE or f.startswith('checkpoint_')] \
        if os.path.isdir(embedding_dir) else []
    if foreign:
        raise SetupError(f'{embedding_dir}: holds {foreign[0]}, which is not an enrollment; '
                         'give an embedding_dir of its own')
    os.makedirs(parent, exist_ok=True)
    for stale in glob.glob(os.path.join(parent, f'.{name}.new-*')) + \
            glob.glob(os.path.join(parent, f'.{name}.old-*')):  # left by a killed run
        shutil.rmtree(stale, ignore_errors=True)
    new = tempfile.mkdtemp(prefix=f'.{name}.new-', dir=parent)
    give_usual_permissions(new, 0o777)
    for speaker in sorted(embeddings):
        save_torch(embeddings[speaker], os.path.join(new, speaker + '.pth'))
        print(f'Save the embeddings for {speaker}')
    with open(os.path.join(new, MODEL_FILE), 'w', encoding='utf-8') as f:
        f.write(f'{model_fingerprint(checkpoint)} {checkpoint.get("path", "?")}\n'
                + ''.join(f'{s}\n' for s in sorted(embeddings)))
    old = new.replace('.new-', '.old-')
    if os.path.isdir(embedding_dir):
        os.rename(embedding_dir, old)
    os.rename(new, embedding_dir)
    shutil.rmtree(old, ignore_errors=True)


def enrolled_with(embedding_dir: str, checkpoint: dict) -> dict:
    """The speakers already enrolled in ``embedding_dir`` by this model (to add more to them);
    {} when there are none. SetupError when the folder holds enrollments this model cannot add
    to (another model's, or a set without a record): they are not thrown away unasked."""
    held = [f for f in os.listdir(embedding_dir) if f.endswith('.pth')] \
        if os.path.isdir(embedding_dir) else []
    if not held:
        return {}
    record = read_record(embedding_dir)
    if record is None or record[0] != model_fingerprint(checkpoint):
        made_by = f'another model ({record[1]})' if record else 'a model it has no record of'
        raise SetupError(f'{embedding_dir}: holds {len(held)} speakers enrolled by {made_by}; '
                         'give another embedding folder, or remove this one to start anew')
    return load_enroll_embeddings(embedding_dir, checkpoint)


def split_enroll_and_test(folder: str, ext: str = '.p') -> tuple:
    """Tables of the enrollment files (named ``enroll.p``; ``enroll.wav`` when ``ext`` is
    '.wav') and the others (for testing)."""
    if ext == '.p':
        table = read_feats_structure(folder)
    else:
        table = read_DB_structure(folder, '**/*' + ext) if os.path.isdir(folder) else None
        if table is None or table.empty:
            raise SetupError(f'{folder}: no {ext} files in <speaker> folders under it')
    is_enroll = table['filename'].map(lambda f: os.path.basename(f) == 'enroll' + ext)
    return table[is_enroll].reset_index(drop=True), table[~is_enroll].reset_index(drop=True)


def sum_per_speaker(speaker_ids: list, embeddings: torch.Tensor) -> dict:
    """{speaker: (1, E) sum of its files' embeddings}: a speaker's enrollment."""
    enrolled = {}
    for speaker, emb in zip(speaker_ids, embeddings):
        enrolled[speaker] = enrolled.get(speaker, 0) + emb.unsqueeze(0)  # (1, E)
    return enrolled


def read_enrollment(path: str) -> torch.Tensor:
    """One speaker's (1, E) enrollment; SetupError unless the file holds a finite vector."""
    emb = load_torch(path)
    if not torch.is_tensor(emb) or emb.numel() == 0 or not emb.is_floating_point() \
            or not torch.isfinite(emb).all():
        raise SetupError(f'{path}: not an enrollment (expected a finite (1, E) tensor, got '
                         f'{type(emb).__name__}); run enroll.py again')
    return emb.reshape(1, -1).float()


def load_enroll_embeddings(embedding_dir: str, checkpoint: dict = None) -> dict:
    """The slides' load_enroll_embeddings: {speaker: (1, E) enrollment} from enroll.py's
    folder. Given the checkpoint of the model loaded now, a set made by another model, or
    files the record does not cover, is refused."""
    if not os.path.isdir(embedding_dir):
        raise SetupError(f'{embedding_dir}: enrollment folder not found (run enroll.py first)')
    speakers = sorted(f[:-4] for f in os.listdir(embedding_dir) if f.endswith('.pth'))
    if not speakers:
        raise SetupError(f'{embedding_dir}: no enrolled speakers (*.pth); run enroll.py first')
    record = read_record(embedding_dir)
    if record and checkpoint is not None:
        fingerprint, model, recorded = record
        if fingerprint != model_fingerprint(checkpoint):
            raise SetupError(f'{embedding_dir}: enrolled with another model ({model}) than the '
                             'one loaded now; run enroll.py again with this model')
        extra = sorted(set(speakers) - set(recorded)) if recorded else []  # older records: none
        if extra:
            raise SetupError(f'{embedding_dir}: {extra[0]}.pth is not part of the enrolled set '
                             f'({MODEL_FILE}); run enroll.py again')
    embeddings = {s: read_enrollment(os.path.join(embedding_dir, s + '.pth')) for s in speakers}
    sizes = {e.shape[1] for e in embeddings.values()}
    if len(sizes) > 1:
        raise SetupError(f'{embedding_dir}: enrollments of different sizes {sorted(sizes)}; '
                         'run enroll.py again')
    return embeddings


def select_speakers(embeddings: dict, speakers: list, embedding_dir: str) -> tuple:
    """(speaker list, (N, E) tensor) of the chosen enrolled speakers (all when none chosen)."""
    speakers = list(speakers) if speakers else sorted(embeddings)
    unknown = [s for s in speakers if s not in embeddings]
    if unknown:
        raise SetupError(f'speaker {", ".join(unknown)} is not enrolled in {embedding_dir}; '
                         'enrolled: ' + ', '.join(sorted(embeddings)))
    return speakers, torch.cat([embeddings[s] for s in speakers])  # (N, E)


def find_test_file(test_dir: str, speaker: str, name: str = 'test.p') -> str:
    """``<test_dir>/<speaker>/test.p``; SetupError listing the speakers that have one."""
    path = os.path.join(test_dir, speaker, name)
    if not os.path.isfile(path):
        have = sorted(d for d in os.listdir(test_dir)
                      if os.path.isfile(os.path.join(test_dir, d, name))) \
            if os.path.isdir(test_dir) else []
        raise SetupError(f'test_speaker={speaker!r}: no {path}; speakers with a {name}: '
                         + (', '.join(have) or f'none ({test_dir} has none)'))
    return path
