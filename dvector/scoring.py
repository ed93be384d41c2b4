"""Cosine scoring of test embeddings against enrolled speakers, and AS-norm.

The cosine is computed one way: both sides' rows L2-normalised with the slides' ``l2_norm``
(dvector/embedding.py), then multiplied; ``cosine_scores`` scores every test against every
enrolled speaker, ``cosine_pairs`` each row against the same row of the other side (a trial
list). An enrollment is a sum of d-vectors, so it is normalised here, not by the caller.
"""
import torch

from configure import SetupError
from dvector.embedding import l2_norm


def check_sizes(test: torch.Tensor, enrolled: torch.Tensor) -> None:
    """SetupError when the two sides' embeddings have different sizes (another model's)."""
    if test.shape[1] != enrolled.shape[1]:
        raise SetupError(f'embeddings of {test.shape[1]} numbers cannot be scored against '
                         f'enrollments of {enrolled.shape[1]}: they were made by another model; '
                         'run enroll.py again with this one')


def cosine_scores(test: torch.Tensor, enrolled: torch.Tensor) -> torch.Tensor:
    """(M, N) cosine similarity of M test embeddings (M, E) with N enrolled ones (N, E)."""
    check_sizes(test, enrolled)
    return l2_norm(test.float()) @ l2_norm(enrolled.float()).T  # (M, N)


def cosine_pairs(test: torch.Tensor, enrolled: torch.Tensor) -> torch.Tensor:
    """(T,) cosine similarity of each of T test embeddings (T, E) with the enrolled embedding
    in the same row (T, E): the scores of a trial list, without the (T, T) matrix."""
    check_sizes(test, enrolled)
    if len(test) != len(enrolled):
        raise ValueError(f'{len(test)} tests but {len(enrolled)} enrollments: one each a trial')
    return (l2_norm(test.float()) * l2_norm(enrolled.float())).sum(dim=1)  # (T,)


def cohort_stats(embeddings: torch.Tensor, cohort: torch.Tensor, top_k: int) -> tuple:
    """Mean and standard deviation, (N,) each, of each embedding's ``top_k`` highest cosine
    scores against the (C, E) cohort: how high this voice scores with strangers."""
    top = cosine_scores(embeddings, cohort).topk(top_k, dim=1).values  # (N, top_k)
    return top.mean(dim=1), top.std(dim=1).clamp_min(1e-6)


def as_norm(scores: torch.Tensor, enroll_stats: tuple, test_stats: tuple) -> torch.Tensor:
    """Adaptive symmetric score normalisation (Matejka et al., Interspeech 2017): the mean of
    the score z-normalised by the enroll side's cohort stats and by the test side's. Stats and
    scores broadcast: (T,) per trial, or (1, N) enrolled by (M, 1) tests for an (M, N) matrix."""
    (enroll_mean, enroll_std), (test_mean, test_std) = enroll_stats, test_stats
    return 0.5 * ((scores - enroll_mean) / enroll_std + (scores - test_mean) / test_std)


def as_norm_matrix(scores: torch.Tensor, tests: torch.Tensor, enrolled: torch.Tensor,
                   cohort: torch.Tensor, top_k: int) -> torch.Tensor:
    """AS-norm of the (M, N) scores of M tests (M, E) against N enrolled speakers (N, E)."""
    e_mean, e_std = cohort_stats(enrolled, cohort, top_k)  # (N,) each: along the rows
    t_mean, t_std = cohort_stats(tests, cohort, top_k)     # (M,) each: down the columns
    return as_norm(scores, (e_mean[None], e_std[None]), (t_mean[:, None], t_std[:, None]))


def verify(score: float, thres: float) -> str:
    """The tutorial's decision: Accept when the score is above the threshold."""
    return 'Accept' if score > thres else 'Reject'
