"""Fit a model's duration-aware score calibration (dvector/calibration.py) and store it in its
checkpoint; run it again to refit (a retrained model, other data).

    python tools/calibrate.py                       # model_real, on its own training folders
    python tools/calibrate.py --log_dir runs/mine --train_feat_dir runs/heldout_full/train

The trials are never of the speakers it is measured on (docs/RESULTS.md: the held-out speakers
and the tutorial's test speakers). Stage 1 learns how scores move with length: each training
speaker's utterances (trimmed as for training; train.py's validation files left out) are joined
and cut into segments of 1-20 s of speech (lengths drawn evenly on a log scale), each utterance
in one segment at most; every pair of one speaker's segments is a target trial, and pairs of
segments of two speakers of one folder are the non-targets. The model was trained on these
utterances, so its scores there are more confident than on new ones: stage 2 refits the scale
and offset of the LLRs on train.py's validation utterances (recovered from the run's seed and
folders, as split_train_dev draws them; each whole and cut to 1.5 s and 3 s), which the model
never trained on. They are too few (about two per speaker) to make 20-s trials of their own,
hence the two stages.
Segment embeddings are kept in ``cache_dir`` so that a refit does not embed again.
"""
import hashlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository
import numpy as np  # noqa: E402
import torch  # noqa: E402

from DB_wav_reader import read_feats_structure, read_training_folders  # noqa: E402
from dvector import cli  # noqa: E402
from dvector.calibration import (  # noqa: E402
    apply_calibration,
    describe_calibration,
    fit_calibration,
    model_calibration,
    refit_scale_and_offset,
    store_calibration,
)
from dvector.checkpoint import (  # noqa: E402
    check_rewritable,
    load_model,
    model_fingerprint,
    select_device,
)
from dvector.embedding import check_feature_dims, embed_utterances  # noqa: E402
from dvector.fileio import check_writable_dir, folder_lock, load_torch, save_torch  # noqa: E402
from dvector.metrics import cllr  # noqa: E402
from dvector.recordings import REAL_MODEL_DIR  # noqa: E402
from dvector.scoring import cosine_pairs  # noqa: E402
from SR_Dataset import read_MFB  # noqa: E402

# ---- settings ---------------------------------------------------------------------------
use_cuda = True                      # use the GPU when there is one (else the CPU)
log_dir = REAL_MODEL_DIR             # the model to calibrate (the wav commands' model)
cp_num = 0                           # checkpoint epoch; 0 = lowest validation loss
train_feat_dir = ''                  # speaker folders to make trials of, comma-separated;
                                     # '' = the folders the model was trained on
speakers_per_folder = 200            # at most this many speakers of each folder (a seeded draw)
segments_per_speaker = 6             # segments made of each speaker's utterances
min_seconds = 1.0                    # the shortest segment (seconds of speech)
max_seconds = 20.0                   # the longest
nontarget_per_target = 4             # non-target trials per target trial
seed = 1                             # fixes the speakers, segments and non-target pairs
cache_dir = 'runs/calib'             # segment embeddings kept for refits ('' = none)
# ------------------------------------------------------------------------------------------
SETTING_RULES = {  # the allowed values of each setting, checked before any work
    'use_cuda': cli.FLAG, 'log_dir': cli.FOLDER, 'cp_num': cli.at_least(0),
    'train_feat_dir': cli.TEXT, 'speakers_per_folder': cli.at_least(2),
    'segments_per_speaker': cli.at_least(2), 'min_seconds': cli.above(0, 600),
    'max_seconds': cli.above(0, 600), 'nontarget_per_target': cli.above(0, 1000),
    'seed': cli.at_least(0), 'cache_dir': cli.OPTIONAL_FOLDER}
FRAMES_PER_SECOND = 100  # a 10 ms hop
VERSION_SECONDS = (1.5, 3.0)  # validation utterances are also cut to these lengths (stage 2)


def training_folders(checkpoint: dict) -> list:
    """The folders to make trials of: train_feat_dir, or the model's own training folders."""
    folders = train_feat_dir or (checkpoint.get('train_settings') or {}).get('train_feat_dir')
    if not folders:
        raise cli.SetupError(f'{checkpoint["path"]}: does not record its training folders; '
                             'give --train_feat_dir')
    folders = [f.strip() for f in str(folders).split(',') if f.strip()]
    missing = [f for f in folders if not os.path.isdir(f)]
    if missing:
        whose = '--train_feat_dir' if train_feat_dir else f'{checkpoint["path"]} was trained on'
        raise cli.SetupError(f'{whose} {missing[0]}: not a folder'
                             + ('' if train_feat_dir else ' here; give --train_feat_dir'))
    return folders


def validation_files(checkpoint: dict, folders: list) -> set:
    """The files train.py held out for validation, recovered as its split_train_dev draws
    them (the joined table of the training folders shuffled with the run's seed, the last
    val_ratio percent); empty when the folders are not the model's own or it lacks the record.
    """
    settings = checkpoint.get('train_settings') or {}
    own = str(settings.get('train_feat_dir', '')).split(',')
    if [os.path.realpath(f.strip()) for f in own] != [os.path.realpath(f) for f in folders] \
            or not isinstance(settings.get('seed'), int) or not settings.get('val_ratio'):
        return set()
    table = read_training_folders(','.join(folders))
    valid_len = int(len(table) * settings['val_ratio'] / 100.0)
    shuffled = table.sample(frac=1, random_state=settings['seed']).reset_index(drop=True)
    trained, held = shuffled.iloc[:len(table) - valid_len], shuffled.iloc[len(table) - valid_len:]
    # a speaker with all its files drawn for validation trains on one of them (train.py's
    # keep_every_speaker); such speakers' files are left out of both lists here
    held = held[held['speaker_id'].isin(set(trained['speaker_id']))]
    return set(held['filename'])


def plan_segments(folder: str, rng: np.random.Generator, leave_out: set = frozenset()) -> list:
    """[(speaker, files, seconds wanted)] of the folder's drawn speakers: each speaker's
    utterances (but those left out) in a seeded order, the wanted lengths log-uniform in
    min..max_seconds."""
    table = read_feats_structure(folder)
    table = table[~table['filename'].isin(leave_out)]
    files = table.groupby('speaker_id')['filename'].apply(sorted).to_dict()
    speakers = sorted(files)
    chosen = sorted(rng.choice(speakers, min(speakers_per_folder, len(speakers)),
                               replace=False))
    plans = []
    for speaker in chosen:
        order = list(rng.permutation(files[speaker]))
        wanted = np.exp(rng.uniform(np.log(min_seconds), np.log(max_seconds),
                                    segments_per_speaker))
        plans.append((str(speaker), [str(f) for f in order], [float(w) for w in wanted]))
    return plans


def cut_segments(plan: tuple) -> list:
    """One speaker's [(speaker, (frames, bands) segment)]: its utterances, in the plan's order,
    joined until each wanted length is reached and cut to it; each utterance used once. A
    speaker whose utterances run out gets fewer segments."""
    speaker, files, wanted = plan
    segments, pending, used = [], [], 0
    for seconds in wanted:
        frames = int(round(seconds * FRAMES_PER_SECOND))
        while sum(len(p) for p in pending) < frames and used < len(files):
            pending.append(read_MFB(files[used])[0])
            used += 1
        joined = np.concatenate(pending) if pending else np.zeros((0, 1))
        if len(joined) < frames:
            break
        segments.append((speaker, joined[:frames]))
        pending = []  # the rest of the last utterance is dropped: each utterance once
    return segments


def cache_path(checkpoint: dict, plans: list) -> str:
    """A cache file named by what decides its embeddings: the model and the segment plans
    (speakers, their files in order, the lengths wanted)."""
    key = model_fingerprint(checkpoint) + repr(plans)
    return os.path.join(cache_dir, f'segments_{hashlib.sha1(key.encode()).hexdigest()[:16]}.pth')


def embed_folder(model, checkpoint: dict, folder: str, rng: np.random.Generator,
                 device, leave_out: set = frozenset()) -> dict:
    """{'speaker', 'seconds' per segment, 'embeddings' (n, E)} of one folder's segments, from
    the cache when it holds them."""
    plans = plan_segments(folder, rng, leave_out)
    path = cache_path(checkpoint, plans) if cache_dir else ''
    if path and os.path.isfile(path):
        print(f'{folder}: segment embeddings read from {path} (delete it to embed again)')
        return checked_cache(load_torch(path), path, plans, embedding_width(model, device))
    segments = [segment for plan in plans for segment in cut_segments(plan)]
    speakers, feats = [s for s, _ in segments], [f for _, f in segments]
    print(f'{folder}: {len(feats)} segments of {len(set(speakers))} speakers, '
          f'{sum(map(len, feats)) / FRAMES_PER_SECOND / 60:.0f} min of speech')
    check_feature_dims(model, feats, speakers)
    embedded = {'speaker': speakers, 'seconds': [len(f) / FRAMES_PER_SECOND for f in feats],
                'segments': len(feats),  # a cache cut short does not follow its count
                'embeddings': embed_utterances(model, feats, 0, device,
                                               progress='embedding segments')}
    if path:
        os.makedirs(cache_dir, exist_ok=True)
        save_torch(embedded, path)
    return embedded


def embedding_width(model, device) -> int:
    """The width of the model's d-vectors (one forward pass of a second of noise)."""
    noise = np.random.default_rng(0).normal(size=(FRAMES_PER_SECOND, model.n_bands))
    return int(embed_utterances(model, [noise.astype(np.float32)], 0, device).shape[1])


def follows_plans(speakers: list, seconds: list, plans: list) -> bool:
    """Whether (speaker, seconds) of each segment are those cut_segments makes of ``plans``:
    each planned speaker in order, its first wanted lengths (fewer when its speech ran out)."""
    row = 0
    for speaker, _, wanted in plans:
        for length in wanted:
            frames = int(round(length * FRAMES_PER_SECOND))
            if row < len(speakers) and speakers[row] == speaker \
                    and seconds[row] == frames / FRAMES_PER_SECOND:
                row += 1
            else:
                break
    return row == len(speakers) > 0


def checked_cache(embedded, path: str, plans: list, width: int) -> dict:
    """A cache file's contents as embed_folder wrote them for these ``plans`` and this model: a
    (segments, width) tensor of finite unit-length d-vectors, and the speaker and seconds of
    each segment as the plans make them; SetupError naming the file otherwise (damaged, or
    written by something else)."""
    try:
        vectors, speakers, seconds = (embedded[k] for k in ('embeddings', 'speaker', 'seconds'))
        vectors = vectors.detach()
        fine = (vectors.is_floating_point() and tuple(vectors.shape) == (len(speakers), width)
                and bool(torch.isfinite(vectors).all())
                and bool(torch.allclose(vectors.norm(dim=1), torch.ones(len(vectors)),
                                        atol=1e-3))
                and embedded.get('segments') == len(speakers)
                and follows_plans(list(speakers), list(seconds), plans))
    except (TypeError, KeyError, IndexError, RuntimeError, AttributeError):
        fine = False
    if not fine:
        raise cli.SetupError(f'{path}: not a segment cache that calibrate.py wrote; delete it '
                             'to embed again')
    return {'speaker': list(speakers), 'seconds': list(seconds), 'embeddings': vectors,
            'segments': len(speakers)}


def embed_segments(model, checkpoint: dict, folders: list, device,
                   leave_out: set = frozenset()) -> dict:
    """Every folder's segments: {'folder' (its number), 'speaker', 'seconds', 'embeddings',
    'source' (segments of one source are never a target pair)}."""
    rng = np.random.default_rng(seed)
    parts = [embed_folder(model, checkpoint, folder, rng, device, leave_out)
             for folder in folders]
    return joined_parts(parts)


def joined_parts(parts: list) -> dict:
    """Folders' segment dicts as one, each segment numbered by its folder."""
    return {'folder': [n for n, part in enumerate(parts) for _ in part['speaker']],
            'speaker': [s for part in parts for s in part['speaker']],
            'seconds': [s for part in parts for s in part['seconds']],
            'source': [f'{n}:{s}' for n, part in enumerate(parts)
                       for s in part.get('source', range(len(part['speaker'])))],
            'embeddings': torch.cat([part['embeddings'] for part in parts])}


def embed_validation(model, checkpoint: dict, folders: list, files: set, device) -> dict:
    """The validation utterances, each whole and cut to its first VERSION_SECONDS (where
    longer), embedded as segments whose source is the utterance."""
    parts = []
    for folder in folders:
        table = read_feats_structure(folder)
        table = table[table['filename'].isin(files)].sort_values('filename')
        speakers, sources, feats = [], [], []
        for path, speaker in zip(table['filename'], table['speaker_id']):
            feat = read_MFB(path)[0]
            cuts = [len(feat)] + [int(v * FRAMES_PER_SECOND) for v in VERSION_SECONDS
                                  if v * FRAMES_PER_SECOND < len(feat)]
            for frames in cuts:
                speakers.append(str(speaker))
                sources.append(path)
                feats.append(feat[:frames])
        check_feature_dims(model, feats, sources)
        print(f'{folder}: {len(table)} validation utterances, {len(feats)} segments')
        parts.append({'speaker': speakers, 'source': sources,
                      'seconds': [len(f) / FRAMES_PER_SECOND for f in feats],
                      'embeddings': embed_utterances(model, feats, 0, device,
                                                     progress='embedding validation')})
    return joined_parts(parts)


def make_trials(segments: dict, rng: np.random.Generator) -> tuple:
    """(enroll index, test index, label) arrays: every pair of one speaker's segments, and
    ``nontarget_per_target`` times as many pairs of two speakers of one folder."""
    keys = list(zip(segments['folder'], segments['speaker']))
    groups, source = {}, segments['source']
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    target = [(a, b) for members in groups.values()
              for k, a in enumerate(members) for b in members[k + 1:] if source[a] != source[b]]
    folder = np.asarray(segments['folder'])
    sizes = np.bincount(folder)
    same_speaker = sum(len(m) ** 2 for m in groups.values())
    possible = (int((sizes ** 2).sum()) - same_speaker) // 2  # pairs of two speakers, one folder
    n_wanted = min(int(round(nontarget_per_target * len(target))), possible)
    nontarget = set()
    while len(nontarget) < n_wanted:
        a, b = rng.integers(0, len(keys), size=(2, 2 * n_wanted))
        keep = (folder[a] == folder[b]) & (np.array(keys, dtype=object)[a, 1]
                                           != np.array(keys, dtype=object)[b, 1])
        nontarget.update(zip(np.minimum(a, b)[keep], np.maximum(a, b)[keep]))
    nontarget = sorted(nontarget)[:n_wanted]
    if not target or not nontarget:
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0, bool)
    pairs = np.array(target + nontarget)
    labels = np.r_[np.ones(len(target), bool), np.zeros(len(nontarget), bool)]
    return pairs[:, 0], pairs[:, 1], labels


def fit_stage_two(model, checkpoint: dict, folders: list, files: set, record: dict,
                  device) -> dict:
    """The record refitted (scale and offset) on the validation utterances' trials."""
    segments = embed_validation(model, checkpoint, folders, files, device)
    enroll, test, labels = make_trials(segments, np.random.default_rng(seed + 2))
    if not labels.size:
        print('note: the validation utterances make no target (or no non-target) trials: '
              'stage 1 only')
        return record
    emb, seconds = segments['embeddings'], np.asarray(segments['seconds'])
    scores = cosine_pairs(emb[test], emb[enroll]).numpy()
    llrs = apply_calibration(record, scores, seconds[enroll], seconds[test])
    refit = refit_scale_and_offset(record, llrs, labels)
    print(f'Stage 2 on {labels.sum()} target and {(~labels).sum()} non-target trials of '
          f'{len(files)} validation utterances: Cllr {cllr(llrs, labels):.3f} -> '
          f'{refit["stage2_cllr"]:.3f} bits (LLR x {refit["stage2_scale"]:.3f} '
          f'{refit["stage2_offset"]:+.3f})')
    return {**refit, 'stage2_trials': int(labels.size), 'stage2_utterances': len(files)}


def main() -> None:
    cli.override_settings(globals(), doc=__doc__)
    if min_seconds >= max_seconds:
        raise cli.SetupError(f'--min_seconds {min_seconds:g}: must be below --max_seconds '
                             f'{max_seconds:g}')
    if train_feat_dir:  # before the model is loaded
        training_folders({})
    if cache_dir:
        check_writable_dir(cache_dir, 'cache_dir')
    model, checkpoint = load_model(log_dir, cp_num, select_device(use_cuda))
    check_rewritable(checkpoint['path'], 'calibrate.py')  # before the work, not after the fit
    device = next(model.parameters()).device
    folders = training_folders(checkpoint)
    held = validation_files(checkpoint, folders)
    print(f'{len(held)} validation utterances of train.py\'s split recovered' if held else
          'note: not the model\'s own training folders: no validation utterances (stage 1 only)')
    segments = embed_segments(model, checkpoint, folders, device, held)
    enroll, test, labels = make_trials(segments, np.random.default_rng(seed + 1))
    if not labels.size:
        raise cli.SetupError(f'{",".join(folders)}: too little speech for target and '
                             'non-target trials (two segments of one speaker, two speakers); '
                             'give more utterances or a lower --max_seconds')
    emb = segments['embeddings']
    scores = cosine_pairs(emb[test], emb[enroll]).numpy()
    seconds = np.asarray(segments['seconds'])
    data = ','.join(folders) + ' (training speakers)'
    record = fit_calibration(scores, labels, seconds[enroll], seconds[test],
                             {'data': data, 'n_segments': len(seconds)})
    print(f'Stage 1 on {record["n_target"]} target and {record["n_nontarget"]} non-target '
          f'trials of {len(seconds)} segments: Cllr {record["cllr_fit"]:.3f} bits')
    if held:
        record = fit_stage_two(model, checkpoint, folders, held, record, device)
    before = model_calibration(checkpoint)
    if before:
        print(f'note: it replaces the calibration {describe_calibration(before)}')
    with folder_lock(os.path.dirname(checkpoint['path']), 'a calibration'):  # one writer
        store_calibration(checkpoint['path'], record, scored=checkpoint)
    print(f'Calibration stored in {checkpoint["path"]}: {describe_calibration(record)}')
    print('weights: ' + ', '.join(f'{t} {w:+.3f}' for t, w in zip(record['terms'],
                                                                  record['weights'])))


if __name__ == '__main__':
    cli.run(main)
