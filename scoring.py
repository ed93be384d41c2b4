"""Cosine scoring of test embeddings against enrolled speakers."""
import torch


def cosine_scores(test: torch.Tensor, enrolled: torch.Tensor) -> torch.Tensor:
    """(M, N) cosine similarity of M test embeddings (M, E) with N enrolled ones (N, E)."""
    test = torch.nn.functional.normalize(test.float(), dim=1, eps=1e-10)
    enrolled = torch.nn.functional.normalize(enrolled.float(), dim=1, eps=1e-10)
    return test @ enrolled.T


def identify(test: torch.Tensor, enrolled: torch.Tensor, speakers: list) -> list:
    """The enrolled speaker with the highest cosine score for each test embedding."""
    best = cosine_scores(test, enrolled).argmax(dim=1)
    return [speakers[i] for i in best.tolist()]


def verify(score: float, thres: float) -> str:
    """The tutorial's decision: Accept when the score is above the threshold."""
    return 'Accept' if score > thres else 'Reject'
