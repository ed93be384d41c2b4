import math

import pytest
import torch

from configure import SetupError
from dvector.embedding import l2_norm, split_pieces
from dvector.scoring import (
    as_norm,
    as_norm_matrix,
    cohort_stats,
    cosine_pairs,
    cosine_scores,
    verify,
)


def test_cosine_scores_match_definition_and_are_symmetric():
    a, b = torch.randn(4, 8), torch.randn(3, 8)
    scores = cosine_scores(a, b)
    expected = torch.nn.functional.cosine_similarity(a[:, None], b[None], dim=2)
    assert torch.allclose(scores, expected, atol=1e-6)
    assert torch.allclose(cosine_scores(b, a), scores.T, atol=1e-6)
    assert torch.allclose(cosine_scores(a, 5 * a).diagonal(), torch.ones(4), atol=1e-6)
    with pytest.raises(SetupError, match='embeddings of 8 numbers cannot be scored against '
                                         'enrollments of 6'):
        cosine_scores(a, torch.randn(3, 6))


def test_trial_scores_are_the_matrix_scores_of_each_pair():
    g = torch.Generator().manual_seed(1)
    tests, enrolled = torch.randn(5, 8, generator=g), 3 * torch.randn(5, 8, generator=g)
    pairs = cosine_pairs(tests, enrolled)
    assert pairs.shape == (5,)
    assert torch.allclose(pairs, cosine_scores(tests, enrolled).diagonal(), atol=1e-6)
    expected = torch.nn.functional.cosine_similarity(tests, enrolled, dim=1)
    assert torch.allclose(pairs, expected, atol=1e-6)
    with pytest.raises(ValueError, match='5 tests but 4 enrollments'):
        cosine_pairs(tests, enrolled[:4])
    with pytest.raises(SetupError, match='cannot be scored'):
        cosine_pairs(tests, enrolled[:, :6])


def test_verify():
    assert verify(0.96, 0.95) == 'Accept' and verify(0.95, 0.95) == 'Reject'


def test_l2_norm_and_pieces():
    x = l2_norm(torch.tensor([[3.0, 4.0]]))
    assert torch.allclose(x, torch.tensor([[0.6, 0.8]]), atol=1e-6)
    import numpy as np
    pieces = split_pieces(np.zeros((250, 40)), 100)
    assert [len(p) for p in pieces] == [100, 100, 50]
    assert [len(p) for p in split_pieces(np.zeros((250, 40)), 0)] == [250]


def test_as_norm_z_normalises_by_the_top_cohort_scores_of_each_side():
    cohort = torch.eye(4)  # four orthogonal cohort speakers
    emb = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.6, 0.8, 0.0, 0.0]])
    mean, std = cohort_stats(emb, cohort, 2)  # top 2 scores: (1, 0) and (0.8, 0.6)
    assert torch.allclose(mean, torch.tensor([0.5, 0.7]), atol=1e-6)
    assert torch.allclose(std, torch.tensor([math.sqrt(0.5), math.sqrt(0.02)]), atol=1e-6)
    normed = as_norm(torch.tensor([0.6]), (mean[:1], std[:1]), (mean[1:], std[1:]))
    expected = 0.5 * ((0.6 - 0.5) / math.sqrt(0.5) + (0.6 - 0.7) / math.sqrt(0.02))
    assert normed.item() == pytest.approx(expected, abs=1e-5)


def test_as_norm_of_a_score_matrix_equals_it_trial_by_trial():
    g = torch.Generator().manual_seed(0)
    tests, enrolled, cohort = (torch.randn(n, 8, generator=g) for n in (5, 3, 20))
    t_mean, t_std = cohort_stats(tests, cohort, 6)
    e_mean, e_std = cohort_stats(enrolled, cohort, 6)
    matrix = as_norm_matrix(cosine_scores(tests, enrolled), tests, enrolled, cohort, 6)
    assert matrix.shape == (5, 3)
    for m in range(5):
        for n in range(3):
            one = as_norm(cosine_scores(tests[m:m + 1], enrolled[n:n + 1])[0],
                          (e_mean[n:n + 1], e_std[n:n + 1]), (t_mean[m:m + 1], t_std[m:m + 1]))
            swapped = as_norm(cosine_scores(enrolled[n:n + 1], tests[m:m + 1])[0],
                              (t_mean[m:m + 1], t_std[m:m + 1]), (e_mean[n:n + 1], e_std[n:n + 1]))
            assert matrix[m, n].item() == pytest.approx(one.item(), abs=1e-5)
            assert one.item() == pytest.approx(swapped.item(), abs=1e-5)  # symmetric
