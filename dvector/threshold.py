"""A verification threshold that belongs to its model.

Scores of different models (or of one model before and after whitening) live on different
scales, so a threshold is only meaningful for the model it was measured on. train.py ends by
storing the EER threshold of the pairs of its validation utterances (held-out utterances of the
training speakers: ``fit_validation_threshold``); ``evaluate.py --store_threshold true`` stores
the EER threshold of its trials instead (the test speakers', who were never trained on). Either
is kept in the checkpoint with the false-accept and false-reject rates there; verification.py
(``thres = 0``), identification.py and ``score_wavs`` use it and print it beside each decision
(a model without one gets the class's 0.95, with a word on how to measure its own). One
threshold per scoring: the plain cosine, and each AS-norm cohort size.
"""
import math

import numpy as np
import torch

from configure import SetupError
from dvector.checkpoint import add_to_checkpoint, inference_model, read_checkpoint
from dvector.embedding import embed_files
from dvector.metrics import compute_eer, threshold_table
from dvector.scoring import cosine_scores

THRESHOLD_KEY = 'verification_threshold'  # {scoring: record}; see threshold_record
CLASS_THRESHOLD = 0.95  # the class's threshold, for a model that has none of its own


def scoring_name(as_norm: int = 0) -> str:
    """The key of a scoring: 'cosine', or 'as_norm 50' for AS-norm with the top 50."""
    return f'as_norm {as_norm}' if as_norm else 'cosine'


def threshold_record(threshold: float, false_accept: float, false_reject: float,
                     trials: str, n_trials: int) -> dict:
    """What is stored: the threshold, its error rates (%) and the trials it was measured on."""
    return {'threshold': float(threshold), 'false_accept': float(false_accept),
            'false_reject': float(false_reject), 'trials': str(trials), 'n_trials': int(n_trials)}


def model_threshold(checkpoint: dict, as_norm: int = 0):
    """The stored record for this scoring, or None when the model has none."""
    record = (checkpoint.get(THRESHOLD_KEY) or {}).get(scoring_name(as_norm))
    if not isinstance(record, dict) or not isinstance(record.get('threshold'), float) \
            or not math.isfinite(record['threshold']):
        return None
    return record


def describe(record: dict) -> str:
    """'0.6123 (this model's EER threshold on X, 12640 trials: 4.1 % false accepts, ...)'."""
    return (f"{record['threshold']:.4f} (this model's EER threshold on {record['trials']}, "
            f"{record['n_trials']} trials: {record['false_accept']:.1f} % false accepts, "
            f"{record['false_reject']:.1f} % false rejects)")


def choose_threshold(thres: float, checkpoint: dict, as_norm: int = 0) -> tuple:
    """(threshold, how to print it): ``thres`` itself, or the model's own when ``thres`` is 0.
    A model without one (a training run whose validation had no two utterances of a speaker, a
    model made otherwise) gets the class's 0.95 for the plain cosine, said so in the
    description; with AS-norm, SetupError."""
    if thres != 0:
        return thres, f'{thres:g} (--thres)'
    record = model_threshold(checkpoint, as_norm)
    if record is None and not as_norm:
        return CLASS_THRESHOLD, (f"{CLASS_THRESHOLD:g} (the class's: this model has no threshold "
                                 'of its own yet; evaluate.py --store_threshold true measures '
                                 'and stores its EER threshold)')
    if record is None:
        raise SetupError(f'{checkpoint.get("path", "the model")}: no threshold stored for '
                         f'{scoring_name(as_norm)} scoring; give --thres, or store the EER '
                         'threshold with evaluate.py --store_threshold true')
    return record['threshold'], describe(record)


def store_threshold(path: str, record: dict, as_norm: int = 0, *, scored: dict) -> None:
    """Add ``record`` to the checkpoint file at ``path`` (rewritten atomically); the weights
    and everything else in it stay as they are. ``scored``: the checkpoint the threshold was
    measured on, which the file must still hold (checkpoint.add_to_checkpoint)."""
    add_to_checkpoint(path, THRESHOLD_KEY, scoring_name(as_norm), record, scored)


# ---- the threshold a training run stores: pairs of its validation utterances --------------
VALIDATION_UTTERANCES = 2000  # at most this many make pairs (2 million trials)
VALIDATION_TEST_FRAMES = 100  # pieces of verification.py's test utterances


def eer_record(scores, labels, trials: str) -> dict:
    """The record of the EER threshold of these trials: the rates are those of the decisions
    at that threshold (score > threshold)."""
    _, threshold = compute_eer(scores, labels)
    row = threshold_table(scores, labels, [threshold])[0]
    return threshold_record(threshold, row['false_accept'], row['false_reject'], trials,
                            len(scores))


def pair_trials(embeddings: torch.Tensor, speakers: list) -> tuple:
    """(scores, labels) of every pair of two utterances: cosine scores of the (N, E) embeddings
    (taken from the (N, N) matrix, never (pairs, E) copies), label 1 where both are of one
    speaker."""
    first, second = torch.triu_indices(len(speakers), len(speakers), offset=1)  # (2, N(N-1)/2)
    scores = cosine_scores(embeddings, embeddings)[first, second]  # (N, N) -> (pairs,)
    owner = np.asarray(speakers)
    return scores.numpy(), owner[first.numpy()] == owner[second.numpy()]


def fit_validation_threshold(log_dir: str, epoch: int, files: list, speakers: list,
                             device: torch.device) -> dict:
    """Store in checkpoint ``epoch`` of ``log_dir`` the EER threshold of the pairs of the
    validation utterances ``files`` (of ``speakers``; the first VALIDATION_UTTERANCES), embedded
    as verification.py embeds a test utterance; returns the record, or None (nothing stored)
    when no two of them are of one speaker or of different ones."""
    files, speakers = list(files)[:VALIDATION_UTTERANCES], list(speakers)[:VALIDATION_UTTERANCES]
    if len(set(speakers)) < 2 or len(set(speakers)) == len(speakers):
        return None
    checkpoint = read_checkpoint(log_dir, epoch)
    model = inference_model(checkpoint, device)
    embeddings = embed_files(model, files, VALIDATION_TEST_FRAMES, device).cpu()  # (N, E)
    scores, labels = pair_trials(embeddings, speakers)
    record = eer_record(scores, labels, f'pairs of {len(files)} held-out utterances of '
                        f"{len(set(speakers))} training speakers (train.py's validation)")
    store_threshold(checkpoint['path'], record, scored=checkpoint)
    return record
