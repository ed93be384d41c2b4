import torch

from embedding import l2_norm, split_pieces
from scoring import cosine_scores, identify, verify


def test_cosine_scores_match_definition_and_are_symmetric():
    a, b = torch.randn(4, 8), torch.randn(3, 8)
    scores = cosine_scores(a, b)
    expected = torch.nn.functional.cosine_similarity(a[:, None], b[None], dim=2)
    assert torch.allclose(scores, expected, atol=1e-6)
    assert torch.allclose(cosine_scores(b, a), scores.T, atol=1e-6)
    assert torch.allclose(cosine_scores(a, 5 * a).diagonal(), torch.ones(4), atol=1e-6)


def test_identify_and_verify():
    enrolled = torch.eye(3)
    assert identify(torch.tensor([[0.1, 0.9, 0.0]]), enrolled, ['a', 'b', 'c']) == ['b']
    assert verify(0.96, 0.95) == 'Accept' and verify(0.95, 0.95) == 'Reject'


def test_l2_norm_and_pieces():
    x = l2_norm(torch.tensor([[3.0, 4.0]]))
    assert torch.allclose(x, torch.tensor([[0.6, 0.8]]), atol=1e-6)
    import numpy as np
    pieces = split_pieces(np.zeros((250, 40)), 100)
    assert [len(p) for p in pieces] == [100, 100, 50]
