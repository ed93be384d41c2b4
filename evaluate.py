"""Evaluation and the tutorial's exercises 3 and 4: identification accuracy, EER, minDCF,
a threshold table and plots.

Two modes:
  * the tutorial's test set (default): every test utterance of ``test_dir`` (optionally
    cut into ``chunk_sec``-second pieces) against every enrolled speaker;
        python evaluate.py --log_dir model_saved --chunk_sec 3 --plot_dir eval_plots
  * a trial list of lines ``label enroll_path test_path`` (VoxCeleb's format, paths relative
    to ``feat_dir``; .wav paths use their extracted .p files when present);
        python evaluate.py --trials trials.txt --feat_dir data/tutorial_db --ident_enroll 6
Lists are comma-separated on the command line: ``--p_targets 0.01,0.05``.
A model calibrated by tools/calibrate.py also gets Cllr, min Cllr, the actual DCF of its LLRs'
decisions beside minDCF, and the errors at the operating point (p_target, c_miss, c_fa), per
band of the shorter side's seconds of speech (``duration_bands``). In trial mode ``chunk_sec``
keeps the first chunk_sec seconds of every entry (both sides):
    python evaluate.py --log_dir model_real --trials docs/evaluation/trials_heldout.txt \
        --feat_dir data/tutorial_db --chunk_sec 1.5
``--as_norm 50`` AS-normalises the verification scores against the training speakers that
whitening.py stored in the checkpoint (identification keeps the plain cosine).
"""
import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

import configure as c
from dvector import cli, scoring
from dvector.calibration import (
    DEFAULT_C_FA,
    DEFAULT_C_MISS,
    DEFAULT_P_TARGET,
    apply_calibration,
    check_operating_point,
    describe_calibration,
    describe_point,
    model_calibration,
)
from dvector.checkpoint import COHORT_KEY, check_rewritable, load_model, score_cohort, select_device
from dvector.embedding import check_feature_dims, check_lengths, embed_utterances, split_pieces
from dvector.enrollment import (
    load_enroll_embeddings,
    select_speakers,
    split_enroll_and_test,
    sum_per_speaker,
)
from dvector.feature_paths import JOIN, feature_name
from dvector.fileio import (
    atomic_path,
    check_writable_dir,
    check_writable_file,
    folder_lock,
    remove_stale_temporaries,
)
from dvector.metrics import (
    actual_dcf,
    check_trials,
    cllr,
    compute_eer,
    compute_min_dcf,
    identification_accuracy,
    min_cllr,
    threshold_table,
)
from dvector.recordings import (
    DEMO_MODEL_DIR,
    check_extraction_settings,
    check_unused,
    is_recording,
    model_folders,
    wav_features,
)
from dvector.threshold import model_threshold, threshold_record
from dvector.threshold import store_threshold as store_in_checkpoint
from SR_Dataset import read_MFB

# ---- settings ---------------------------------------------------------------------------
use_cuda = True                      # use the GPU when there is one (else the CPU)
log_dir = 'model_saved'              # where train.py saved its checkpoints (test_wav_dir or a
                                     # trial list of recordings: model_real unless you set it)
cp_num = 0                           # checkpoint epoch to load; 0 = lowest validation loss
test_frames = 100                    # frames per piece when embedding an utterance
test_dir = c.TEST_FEAT_DIR           # tutorial mode: <dir>/<speaker>/{enroll,test}.p
test_wav_dir = ''                    # tutorial mode on recordings: <dir>/<speaker>/{enroll,
                                     # test}.wav, in place of test_dir ('' = test_dir)
vad = True                           # wav files: cut leading, trailing and long silences first
embedding_dir = ''                   # '' = embed the enroll.p files now; else enroll.py's output
chunk_sec = 0.0                      # cut test utterances into pieces of this many s; 0 = whole
                                     # (trial mode: keep each entry's first chunk_sec s)
trials = ''                          # trial list 'label enroll test' per line ('' = tutorial mode;
                                     # an entry 'a.p+b.p' is the files as one recording)
feat_dir = ''                        # root folder that the trial list's paths are relative to
ident_enroll = 0                     # trial mode: per speaker, first N sorted files enroll
scores_out = ''                      # write 'score label enroll test' per trial to this file
plot_dir = ''                        # write the DET curve, histograms, heatmap here ('' = none)
as_norm = 0                          # AS-norm of verification scores with the top as_norm
                                     # cohort scores (whitening.py's); 0 = plain cosine
thres = 0.0                          # the chosen threshold, marked in the table; 0 = the
                                     # model's own (stored by --store_threshold)
store_threshold = False              # store the EER threshold of these trials in the checkpoint
                                     # (verification.py's default threshold for this model)
p_targets = [0.01, 0.05]             # target priors for minDCF (C_miss = C_fa = 1)
p_target = DEFAULT_P_TARGET          # a calibrated model's operating point: the prior of a
c_miss = DEFAULT_C_MISS              # target trial and the costs of a miss and a false accept
c_fa = DEFAULT_C_FA                  # (verification.py's defaults; dvector/calibration.py)
duration_bands = [2, 4, 8, 16]       # band edges (s of speech, the shorter side) for the table
table_thres = [0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99]  # thresholds in the table (exercise 4)
n_threads = 4                        # threads reading feature files
# ------------------------------------------------------------------------------------------
SETTING_RULES = {  # the allowed values of each setting, checked before any work
    'use_cuda': cli.FLAG, 'log_dir': cli.FOLDER, 'cp_num': cli.at_least(0),
    'test_frames': cli.PIECE_FRAMES, 'test_dir': cli.FOLDER,
    'embedding_dir': cli.OPTIONAL_FOLDER, 'chunk_sec': cli.zero_or_at_least(0.5),
    'trials': cli.TEXT, 'feat_dir': cli.OPTIONAL_FOLDER, 'ident_enroll': cli.at_least(0),
    'scores_out': cli.TEXT, 'plot_dir': cli.OPTIONAL_FOLDER, 'as_norm': cli.at_least(0),
    'thres': cli.NUMBER, 'test_wav_dir': cli.OPTIONAL_FOLDER,
    'vad': cli.FLAG, 'store_threshold': cli.FLAG,
    'p_targets': cli.each(cli.Rule(lambda p: 0 < p < 1, 'a number > 0 and < 1')),
    'table_thres': cli.each(cli.NUMBER), 'n_threads': cli.at_least(1),
    'p_target': cli.Rule(lambda p: cli.is_number(p) and 0 < p < 1, 'a number > 0 and < 1'),
    'c_miss': cli.above(0, 1e9), 'c_fa': cli.above(0, 1e9),
    'duration_bands': cli.each(cli.above(0, 1e6))}

FRAMES_PER_SECOND = round(1 / c.HOP_SECONDS)  # 100: a 10 ms hop


def float_list(name: str, values: list) -> list:
    """List settings arrive from the command line as strings."""
    try:
        return [float(v) for v in values]
    except ValueError:
        raise cli.SetupError(f'--{name}: expected comma-separated numbers, got '
                             + ','.join(map(str, values))) from None


# ---- features -----------------------------------------------------------------------------

def read_any(path: str, level_db: float) -> tuple:
    """(trimmed features, speaker) of a feature pickle or a wav (silences cut when vad; set to
    ``level_db``, the model's recording level)."""
    if not is_recording(path):
        return read_MFB(path)
    return wav_features(path, vad, level_db), feature_name(path)[0]


def read_all(model, paths: list) -> tuple:
    """Features and speakers of every file, read in parallel threads; features of another
    band count than the model's are refused."""
    with ThreadPoolExecutor(max(1, n_threads)) as pool:
        results = list(pool.map(lambda p: read_any(p, model.recording_level_db), paths))
    feats = [f for f, _ in results]
    check_feature_dims(model, feats, paths)
    check_lengths(feats, paths)  # a test too short to recognise anyone by is not scored
    return feats, [s for _, s in results]


# ---- tutorial mode ----------------------------------------------------------------------------

def tutorial_dir() -> str:
    return test_wav_dir or test_dir


def tutorial_ext() -> str:
    return '.wav' if test_wav_dir else '.p'


def enrolled_speakers(model, checkpoint: dict, enroll_table, device) -> tuple:
    """(speakers, (N, E) embeddings, {speaker: seconds of speech} or None): from enroll.py's
    folder (whose lengths are not known), or by embedding enroll.p now."""
    if embedding_dir:
        embeddings = load_enroll_embeddings(embedding_dir, checkpoint)
        return (*select_speakers(embeddings, [], embedding_dir), None)
    if enroll_table.empty:
        raise cli.SetupError(f'{tutorial_dir()}: no enroll{tutorial_ext()} files to enroll')
    files = list(enroll_table['filename'])
    feats, _ = read_all(model, files)
    embeddings = embed_utterances(model, feats, test_frames, device)
    sums = sum_per_speaker(list(enroll_table['speaker_id']), embeddings)
    speakers = sorted(sums)
    seconds = defaultdict(float)
    for speaker, feat in zip(enroll_table['speaker_id'], feats):
        seconds[speaker] += len(feat) / FRAMES_PER_SECOND
    return speakers, torch.cat([sums[s] for s in speakers]), seconds  # (N, E)


def test_utterances(model, test_table) -> tuple:
    """(names, features, speakers) of the test files, cut into chunks when asked."""
    if test_table.empty:
        raise cli.SetupError(f'{tutorial_dir()}: no test files (anything but '
                             f'enroll{tutorial_ext()})')
    files = list(test_table['filename'])
    feats, _ = read_all(model, files)
    chunk_frames = int(round(chunk_sec * FRAMES_PER_SECOND))
    names, pieces, speakers = [], [], []
    short = sum(len(feat) < chunk_frames for feat in feats) if chunk_frames else 0
    if short:  # said, or "1000 s pieces" would claim what was not done
        print(f'note: {short} of {len(feats)} test utterances are shorter than '
              f'--chunk_sec {chunk_sec:g}: scored whole')
    for path, speaker, feat in zip(files, test_table['speaker_id'], feats):
        chunks = split_pieces(feat, chunk_frames, drop_short_last=True)
        for k, piece in enumerate(chunks, 1):
            names.append(f'{path}#{k}' if len(chunks) > 1 else path)
            pieces.append(piece)
            speakers.append(speaker)
    return names, pieces, speakers


def report_identification(scores: np.ndarray, speakers: list, enrolled: list) -> None:
    """Top-1 of the enrolled speakers, for tests whose speaker is enrolled."""
    known = [i for i, s in enumerate(speakers) if s in enrolled]
    if len(known) < len(speakers):
        print(f'note: {len(speakers) - len(known)} test utterances are of speakers not '
              'enrolled: left out of identification, kept as non-target trials')
    if not known:
        return
    truth = [enrolled.index(speakers[i]) for i in known]
    acc = identification_accuracy(scores[known], truth)
    correct = int(round(acc * len(known) / 100))
    print(f'Identification accuracy (top-1 of {len(enrolled)}): {acc:.2f} % '
          f'({correct}/{len(known)})')


def sex_of(speaker: str):
    """'F'/'M' from the ID where it says: real IDs (103F3021) at index 3, demo_f../demo_m.."""
    if speaker.startswith('demo_') and speaker[5:6] in ('f', 'm'):
        return speaker[5].upper()
    if len(speaker) == 8 and speaker[3] in 'FM' and speaker[:3].isdigit():
        return speaker[3]
    return None


def report_similar_voices(similarity: np.ndarray, speakers: list) -> None:
    """Exercise 3: mean cosine similarity of enrolled speakers, same vs different sex."""
    sexes = [sex_of(s) for s in speakers]
    same, other = [], []
    for i in range(len(speakers)):
        for j in range(i + 1, len(speakers)):
            if sexes[i] and sexes[j]:
                (same if sexes[i] == sexes[j] else other).append(similarity[i, j])
    if not same or not other:
        return
    print('\n=== Exercise 3: do similar voices get higher cosine similarity? ===')
    print(f'Mean similarity, same sex:      {np.mean(same):.4f} over {len(same)} pairs')
    print(f'Mean similarity, different sex: {np.mean(other):.4f} over {len(other)} pairs')
    off = similarity - np.eye(len(speakers)) * 10
    i, j = np.unravel_index(np.argmax(off), off.shape)
    print(f'Most similar pair: {speakers[i]} and {speakers[j]} ({similarity[i, j]:.4f})')


def evaluate_test_set(model, checkpoint: dict, device) -> tuple:
    """Tutorial mode; returns (trial rows, enrolled similarity matrix, speakers)."""
    enroll_table, test_table = split_enroll_and_test(tutorial_dir(), tutorial_ext())
    if test_wav_dir:
        check_extraction_settings(checkpoint)
    speakers, enrolled, enroll_seconds = enrolled_speakers(model, checkpoint, enroll_table,
                                                           device)
    names, pieces, test_speakers = test_utterances(model, test_table)
    tests = embed_utterances(model, pieces, test_frames, device, progress='embedding tests')
    scores = scoring.cosine_scores(tests, enrolled).numpy()
    chunks = f', {chunk_sec:g} s pieces' if chunk_sec > 0 else ''
    print(f'\n=== Test set {tutorial_dir()} (tutorial mode): {len(speakers)} enrolled speakers, '
          f'{len(names)} test utterances{chunks} ===')
    report_identification(scores, test_speakers, speakers)
    if as_norm:
        scores = scoring.as_norm_matrix(torch.from_numpy(scores), tests, enrolled,
                                        checkpoint[COHORT_KEY], as_norm).numpy()
    rows = [(float(scores[m, n]), int(test_speakers[m] == spk), spk, name)
            for m, name in enumerate(names) for n, spk in enumerate(speakers)]
    seconds = None if enroll_seconds is None else np.array(
        [(enroll_seconds[spk], len(piece) / FRAMES_PER_SECOND)
         for piece in pieces for spk in speakers])  # (trials, 2), in the order of rows
    return rows, scoring.cosine_scores(enrolled, enrolled).numpy(), speakers, seconds


# ---- trial-list mode --------------------------------------------------------------------------

def joined_entry_ok(entry: str) -> bool:
    """A trial entry 'a.p+b.p' names files, each once, all of one speaker folder."""
    parts = entry.split(JOIN)
    if len(parts) == 1:
        return True
    try:
        return len(set(parts)) == len(parts) and len({feature_name(p)[0] for p in parts}) == 1
    except ValueError:  # an empty part, or a file without a speaker folder
        return False


def speaker_of(entry: str) -> str:
    """The speaker folder of a trial entry (its first file; joined files share one); '' for
    a file given without a folder."""
    try:
        return feature_name(entry.split(JOIN)[0])[0]
    except ValueError:
        return ''


def line_numbers(numbers: list) -> str:
    """'3, 7, 9' (the first ten, then 'and N more')."""
    return ', '.join(map(str, numbers[:10])) + (f' and {len(numbers) - 10} more'
                                                if len(numbers) > 10 else '')


def read_trials(path: str, notes: bool = True) -> list:
    """[(label, enroll, test)] from lines 'label enroll test'; SetupError naming bad lines;
    ``notes``: print what is odd but allowed (repeated trials, labels the folders contradict)."""
    if not os.path.isfile(path):
        raise cli.SetupError(f'{path}: trial list not found')
    rows, bad = [], []
    try:
        with open(path, encoding='utf-8-sig') as f:  # an editor's byte-order mark is fine
            lines = f.read().splitlines()
    except UnicodeDecodeError as err:
        raise cli.SetupError(f'{path}: not a text trial list (not UTF-8 at byte {err.start})') \
            from None
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3 or fields[0] not in ('0', '1') or not all(
                joined_entry_ok(entry) for entry in fields[1:]):
            bad.append(number)
            continue
        rows.append((int(fields[0]), fields[1], fields[2]))
    if bad:
        raise cli.SetupError(f'{path}: malformed trial lines {line_numbers(bad)} (expected '
                             '"label enroll_path test_path" with label 0 or 1; files joined '
                             'with + are of one speaker folder)')
    if not rows:
        raise cli.SetupError(f'{path}: no trials in the list')
    if notes:
        note_odd_trials(path, rows)
    return rows


def note_odd_trials(path: str, rows: list) -> None:
    """Notes on trials that are allowed but likely mistakes."""
    disagree = sum(bool(speaker_of(enroll) and speaker_of(test))
                   and (label == 1) != (speaker_of(enroll) == speaker_of(test))
                   for label, enroll, test in rows)
    if disagree:
        print(f'note: {path}: {disagree} of {len(rows)} trials have a label that their speaker '
              'folders contradict (1 for two folders, or 0 for one); scored as labelled')
    repeated = len(rows) - len({frozenset(row[1:]) for row in rows})  # either order
    if repeated:
        print(f'note: {path}: {repeated} trials repeat an earlier one (the same two sides); '
              'each is counted every time it appears')


def feature_candidates(root: str, rel: str) -> list:
    """Files that may hold ``rel``'s features: extracted .p files first, then the file itself."""
    path = os.path.join(root, rel)
    if not rel.endswith('.wav'):
        return [path]
    try:  # the name tools/extract_features.py gave its features
        candidates = [os.path.join(root, feature_name(rel)[1])]
    except ValueError:
        candidates = []
    return candidates + [path[:-4] + '.p', path]


def resolve_files(root: str, rels: list) -> dict:
    """{trial path: file to read}; SetupError listing every path with no file."""
    resolved, missing = {}, []
    for rel in rels:
        found = [p for p in feature_candidates(root, rel) if os.path.isfile(p)]
        if found:
            resolved[rel] = found[0]
        else:
            missing.append(rel)
    if missing:
        shown = ', '.join(missing[:20]) + (f' ... ({len(missing)} in all)' if len(missing) > 20
                                           else '')
        raise cli.SetupError(f'{len(missing)} files of the trial list not found under '
                             f'{root or "."}: {shown}')
    return resolved


def trials_are_recordings() -> bool:
    """Whether the trial list's files (as read: an extracted .p file in place of a .wav when
    there is one) are recordings, which take the real-speech model unless log_dir was chosen
    (recordings.model_folders); known before the model loads. A list mixing feature files
    and recordings is refused unless log_dir was chosen: no one model reads both by default."""
    rows = read_trials(trials)
    parts = sorted({p for _, e, t in rows for entry in (e, t) for p in entry.split(JOIN)})
    kinds = [is_recording(path) for path in resolve_files(feat_dir, parts).values()]
    if all(kinds) or not any(kinds):
        return all(kinds)
    if not cli.was_chosen(globals(), 'log_dir', DEMO_MODEL_DIR):
        raise cli.SetupError(f'{trials}: its trials read {kinds.count(False)} feature files '
                             f'(.p) and {kinds.count(True)} recordings, which take different '
                             'models (recordings: model_real); give --log_dir, the model to '
                             'read both with')
    return False


def embed_trial_files(model, checkpoint: dict, rels: list, device) -> tuple:
    """Each distinct trial entry embedded once: ((n, E) embeddings, speakers), rows as
    ``rels``, and their seconds of speech. An entry 'a.p+b.p+c.p' is one longer recording:
    its files' trimmed features one after another (the speaker is the first file's); with
    chunk_sec, its first chunk_sec seconds."""
    parts = {rel: rel.split(JOIN) for rel in rels}
    resolved = resolve_files(feat_dir, sorted({p for ps in parts.values() for p in ps}))
    paths = sorted(set(resolved.values()))
    if any(is_recording(p) for p in paths):
        check_extraction_settings(checkpoint)
    feats, speakers = read_all(model, paths)
    by_path = {p: (f, s) for p, f, s in zip(paths, feats, speakers)}
    joined = [np.concatenate([by_path[resolved[p]][0] for p in parts[rel]]) for rel in rels]
    if chunk_sec > 0:
        joined = [feat[:int(round(chunk_sec * FRAMES_PER_SECOND))] for feat in joined]
        print(f'Each entry cut to its first {chunk_sec:g} s (shorter ones kept whole)')
    print(f'Embedding {len(rels)} distinct entries ({len(paths)} files)')
    return (embed_utterances(model, joined, test_frames, device, progress='embedding'),
            [by_path[resolved[parts[rel][0]]][1] for rel in rels],
            np.array([len(feat) / FRAMES_PER_SECOND for feat in joined]))


def identification_protocol(rels: list, embeddings: torch.Tensor, speakers: list) -> tuple:
    """docs/EVALUATION.md: per speaker, the first ``ident_enroll`` sorted files enroll
    (normalised sum), each other file is a test; returns (accuracy %, enrolled similarity,
    speaker list)."""
    files = defaultdict(list)
    for i in sorted(range(len(rels)), key=lambda i: rels[i]):
        files[speakers[i]].append(i)
    spk_list = sorted(files)
    enroll = [i for s in spk_list for i in files[s][:ident_enroll]]
    sums = sum_per_speaker([speakers[i] for i in enroll], embeddings[enroll])
    enrolled = torch.cat([sums[s] for s in spk_list])  # (S, E); cosine_scores normalises
    tests = [(i, k) for k, s in enumerate(spk_list) for i in files[s][ident_enroll:]]
    if not tests:
        raise cli.SetupError(f'ident_enroll={ident_enroll}: no speaker has more files than '
                             'that in the trial list, so nothing is left to test')
    scores = scoring.cosine_scores(embeddings[[i for i, _ in tests]], enrolled).numpy()
    acc = identification_accuracy(scores, [k for _, k in tests])
    print(f'Identification (first {ident_enroll} sorted files of each of {len(spk_list)} '
          f'speakers enroll, {len(tests)} tests): top-1 accuracy {acc:.2f} %')
    return acc, scoring.cosine_scores(enrolled, enrolled).numpy(), spk_list


def check_sides_differ(rows: list) -> None:
    """SetupError naming the trials whose two sides read one file (or an entry that joins
    one file twice), as the files are read: the same file by another path (absolute and
    relative, a link or a hard link, a wav and its extracted .p) scores 1 by construction."""
    parts = sorted({p for _, e, t in rows for entry in (e, t) for p in entry.split(JOIN)})
    real = {rel: (os.stat(path).st_dev, os.stat(path).st_ino)  # one file by any name or link
            for rel, path in resolve_files(feat_dir, parts).items()}
    same = []
    for number, (_, enroll, test) in enumerate(rows, 1):
        sides = [[real[p] for p in entry.split(JOIN)] for entry in (enroll, test)]
        if set(sides[0]) & set(sides[1]) or any(len(set(s)) < len(s) for s in sides):
            same.append(number)
    if same:
        raise cli.SetupError(f'{trials}: trials {line_numbers(same)} (counting trials, not '
                             'lines) read one file twice, by other paths (a recording against '
                             'itself scores 1 by construction)')


def evaluate_trials(model, checkpoint: dict, device) -> tuple:
    """Trial-list mode; returns (trial rows, enrolled similarity or None, speakers)."""
    trial_rows = read_trials(trials, notes=False)  # trials_are_recordings printed them
    check_trials(np.zeros(len(trial_rows)), [r[0] for r in trial_rows])  # before embedding
    rels = sorted({p for _, e, t in trial_rows for p in (e, t)})
    embeddings, speakers, entry_seconds = embed_trial_files(model, checkpoint, rels, device)
    index = {rel: i for i, rel in enumerate(rels)}
    enroll = [index[e] for _, e, _ in trial_rows]
    test = [index[t] for _, _, t in trial_rows]
    scores = scoring.cosine_pairs(embeddings[test], embeddings[enroll])  # (trials,)
    if as_norm:
        mean, std = scoring.cohort_stats(embeddings, checkpoint[COHORT_KEY], as_norm)
        scores = scoring.as_norm(scores, (mean[enroll], std[enroll]), (mean[test], std[test]))
    scores = scores.tolist()
    kind = 'recordings' if any(JOIN in rel for rel in rels) else 'files'
    print(f'\n=== Trial list {trials}: {len(trial_rows)} trials, {len(rels)} {kind} ===')
    rows = [(s, label, e, t) for s, (label, e, t) in zip(scores, trial_rows)]
    seconds = np.stack([entry_seconds[enroll], entry_seconds[test]], axis=1)  # (trials, 2)
    if ident_enroll > 0:
        _, similarity, spk_list = identification_protocol(rels, embeddings, speakers)
        return rows, similarity, spk_list, seconds
    return rows, None, [], seconds


# ---- reporting --------------------------------------------------------------------------------

def report_verification(scores: np.ndarray, labels: np.ndarray, chosen) -> float:
    """EER, minDCF and the threshold table (exercise 4; ``chosen`` marked unless None);
    returns the EER threshold."""
    scores, labels = check_trials(scores, labels)
    eer, eer_thres = compute_eer(scores, labels)
    print(f'Verification trials: {labels.size} ({labels.sum()} target, '
          f'{(~labels).sum()} non-target)')
    print(f'EER: {100 * eer:.2f} % at threshold {eer_thres:.4f}')
    for p in float_list('p_targets', p_targets):
        print(f'minDCF (p_target {p:g}): {compute_min_dcf(scores, labels, p):.4f}')
    print('\n=== Exercise 4: the verification result against the threshold ===')
    print('Threshold  False accept %  False reject %  Accuracy %')
    marks = {eer_thres: 'EER'}
    if chosen is not None:
        marks[chosen] = 'EER, chosen' if chosen == eer_thres else 'chosen'
    levels = sorted(set(float_list('table_thres', table_thres)) | set(marks))
    for row in threshold_table(scores, labels, levels):
        mark = marks.get(row['threshold'], '')
        print(f"{row['threshold']:9.4f}  {row['false_accept']:14.2f}  "
              f"{row['false_reject']:14.2f}  {row['accuracy']:10.2f}  {mark}".rstrip())
    return eer_thres


def calibration_row(llrs: np.ndarray, scores: np.ndarray, labels: np.ndarray,
                    p_dcf: float) -> dict:
    """EER, the errors at the operating point, Cllr, min Cllr, actual and minimum DCF(p_dcf)."""
    point = check_operating_point(p_target, c_miss, c_fa)
    _, miss, fa = actual_dcf(llrs, labels, *point)
    return {'eer': 100 * compute_eer(scores, labels)[0], 'fa': 100 * fa, 'fr': 100 * miss,
            'cllr': cllr(llrs, labels), 'min_cllr': min_cllr(scores, labels),
            'act_dcf': actual_dcf(llrs, labels, p_dcf)[0],
            'min_dcf': compute_min_dcf(scores, labels, p_dcf)}


def report_bands(llrs: np.ndarray, scores: np.ndarray, labels: np.ndarray,
                 shorter: np.ndarray, p_dcf: float) -> None:
    """The calibration table, by band of the shorter side's seconds of speech, and overall."""
    edges = [0.0] + sorted(float_list('duration_bands', duration_bands)) + [np.inf]
    print(f'\n=== Calibration by seconds of speech (shorter side); operating point '
          f'{describe_point(check_operating_point(p_target, c_miss, c_fa))} ===')
    print(f'{"Band (s)":>11}  {"Trials":>6}  {"EER %":>6}  {"FA %":>6}  {"FR %":>6}  '
          f'{"Cllr":>6}  {"minCllr":>7}  {"actDCF":>6}  {"minDCF":>6}  (DCF at p_target '
          f'{p_dcf:g})')
    bands = [(f'{lo:g}-{hi:g}', (shorter >= lo) & (shorter < hi))
             for lo, hi in zip(edges[:-1], edges[1:])] + [('all', np.ones_like(labels, bool))]
    for name, keep in bands:
        if labels[keep].all() or not labels[keep].any():
            continue  # a band without both kinds of trial has no EER
        r = calibration_row(llrs[keep], scores[keep], labels[keep], p_dcf)
        print(f'{name:>11}  {int(keep.sum()):6d}  {r["eer"]:6.2f}  {r["fa"]:6.2f}  '
              f'{r["fr"]:6.2f}  {r["cllr"]:6.3f}  {r["min_cllr"]:7.3f}  {r["act_dcf"]:6.3f}  '
              f'{r["min_dcf"]:6.3f}')


def report_calibration(checkpoint: dict, scores: np.ndarray, labels: np.ndarray,
                       seconds) -> object:
    """A calibrated model's LLRs of these trials, Cllr, DCFs and the band table; None (with a
    note) for a model without calibration or trials whose lengths are unknown."""
    record = model_calibration(checkpoint, as_norm)
    if record is None:
        print('\nnote: this model has no score calibration (python tools/calibrate.py --log_dir '
              '<model> fits one): no Cllr or actual DCF')
        return None
    if seconds is None:
        print('\nnote: the enrollments of embedding_dir carry no lengths: no calibrated metrics')
        return None
    scores, labels = check_trials(scores, labels)
    llrs = apply_calibration(record, scores, seconds[:, 0], seconds[:, 1])
    print(f'\nLLRs of this model\'s calibration ({describe_calibration(record)})')
    print(f'Cllr: {cllr(llrs, labels):.4f} bits (min Cllr {min_cllr(scores, labels):.4f})')
    for p in float_list('p_targets', p_targets):
        print(f'actual DCF (p_target {p:g}): {actual_dcf(llrs, labels, p)[0]:.4f} '
              f'(minDCF {compute_min_dcf(scores, labels, p):.4f})')
    dcf_prior = float_list('p_targets', p_targets)[0] if p_targets else 0.01
    report_bands(llrs, scores, labels, seconds.min(axis=1), dcf_prior)
    return llrs


def save_threshold(checkpoint: dict, scores: np.ndarray, labels: np.ndarray,
                   eer_thres: float) -> None:
    """Store the EER threshold and its error rates in the checkpoint (store_threshold)."""
    row = threshold_table(scores, labels, [eer_thres])[0]
    where = trials or f'{tutorial_dir()} (tutorial test set' + \
        (f', {chunk_sec:g} s pieces)' if chunk_sec > 0 else ')')
    record = threshold_record(eer_thres, row['false_accept'], row['false_reject'], where,
                              len(scores))
    before = model_threshold(checkpoint, as_norm)
    if before:
        print(f"note: it replaces {before['threshold']:.4f}, measured on {before['trials']} "
              f"({before['n_trials']} trials)")
    with folder_lock(os.path.dirname(checkpoint['path']), 'a threshold'):  # one writer
        remove_stale_temporaries(os.path.dirname(checkpoint['path']))  # a killed writer's
        store_in_checkpoint(checkpoint['path'], record, as_norm, scored=checkpoint)
    print(f'Threshold {eer_thres:.4f} stored in {checkpoint["path"]}: verification.py\'s '
          'default for this model')


def check_scores_out(path: str) -> None:
    """Before any work: ``scores_out`` is a new file, or one that write_scores wrote (lines
    'score label enroll test'); anything else there (a checkpoint, a trial list, notes) is
    refused, never replaced."""
    check_writable_file(path, 'scores_out')
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return
    try:
        with open(path, encoding='utf-8') as f:
            first = f.readline(4096).split()
        float(first[0])
        ours = len(first) == 4 and first[1] in ('0', '1')
    except (OSError, UnicodeDecodeError, ValueError, IndexError):
        ours = False
    if not ours:
        raise cli.SetupError(f'--scores_out {path}: this file exists and is not a scores file '
                             'that evaluate.py wrote; it is left as it is: give another name')


def write_scores(path: str, rows: list) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, 'w') as f:
            f.writelines(f'{s:.6f} {label} {e} {t}\n' for s, label, e, t in rows)
    print(f'Scores of {len(rows)} trials written to {path}')


PLOT_FILES = ('det_curve.png', 'score_histogram.png', 'calibration.png',
              'speaker_similarity.png')  # what write_plots may write into plot_dir


def check_plot_dir(folder: str) -> None:
    """Before any work: plot_dir can be written, and each figure's name there is free or holds
    a PNG that matplotlib drew (evaluate.py's figure of an earlier run, replaced); a folder
    or anything else of that name was a traceback after the work, or was replaced."""
    check_writable_dir(folder, 'plot_dir')
    for name in PLOT_FILES:
        path = os.path.join(folder, name)
        if not os.path.lexists(path):
            continue
        try:
            with open(path, 'rb') as f:
                head = f.read(256)
        except OSError:  # a folder, a broken link, or a file that cannot be read
            head = b''
        if not (head.startswith(b'\x89PNG') and b'Matplotlib' in head):
            raise cli.SetupError(f'--plot_dir {folder}: holds {name}, which is not a figure '
                                 'evaluate.py drew; it is left as it is: move it, or give '
                                 'another folder')


def write_plots(scores, labels, similarity, speakers: list, chosen, llrs=None) -> None:
    from dvector import plots  # matplotlib only when plots are asked for
    data = (f'trial list {os.path.basename(trials)}' if trials else 'tutorial test set'
            + (f', {chunk_sec:g} s pieces' if chunk_sec > 0 else ''))
    written = [plots.plot_det(scores, labels, os.path.join(plot_dir, PLOT_FILES[0]),
                              title=f'DET curve ({data})'),
               plots.plot_score_histograms(scores, labels,
                                           os.path.join(plot_dir, PLOT_FILES[1]), chosen,
                                           title=f'Target and non-target scores ({data})')]
    if llrs is not None:
        written.append(plots.plot_ape(llrs, labels, os.path.join(plot_dir, PLOT_FILES[2]),
                                      title=f'Calibration: applied probability of error ({data})'))
    if similarity is not None:
        written.append(plots.plot_similarity_heatmap(
            similarity, speakers, os.path.join(plot_dir, PLOT_FILES[3])))
    print('Plots written: ' + ', '.join(written))


def main() -> None:
    cli.override_settings(globals(), doc=__doc__)
    check_unused(globals(), 'test_wav_dir', ('test_dir',))
    if scores_out:
        check_scores_out(scores_out)
    if plot_dir:
        check_plot_dir(plot_dir)
    if trials and not feat_dir:
        print('note: --feat_dir not given: trial paths are relative to the current folder')
    device = select_device(use_cuda)
    wav_input = bool(test_wav_dir) or bool(trials) and trials_are_recordings()
    if trials:  # before the model loads
        check_sides_differ(read_trials(trials, notes=False))
    model_dir = model_folders(globals(), wav_input).log_dir
    model, checkpoint = load_model(model_dir, cp_num, device)
    if store_threshold:  # a read-only model folder or a full disk: known before the work
        check_rewritable(checkpoint['path'], '--store_threshold')
    if as_norm:  # a missing cohort or a bad top_k is refused before anything is embedded
        score_cohort(checkpoint, as_norm, model_dir)
    evaluate = evaluate_trials if trials else evaluate_test_set
    rows, similarity, speakers, seconds = evaluate(model, checkpoint, device)
    scores = np.array([r[0] for r in rows])
    labels = np.array([r[1] for r in rows])
    chosen = thres or (model_threshold(checkpoint, as_norm) or {}).get('threshold')
    eer_thres = report_verification(scores, labels, chosen)
    llrs = report_calibration(checkpoint, scores, labels, seconds)
    if similarity is not None:
        report_similar_voices(similarity, speakers)
    if store_threshold:
        save_threshold(checkpoint, scores, labels, eer_thres)
    if scores_out:
        write_scores(scores_out, rows)
    if plot_dir:
        write_plots(scores, labels, similarity, speakers, chosen, llrs)


if __name__ == '__main__':
    cli.run(main)
