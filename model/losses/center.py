"""Softmax + center loss (Wen et al., ECCV 2016).

loss = CE(last logits) + center_weight * 1/2 * mean ||x_i - c_{y_i}||^2 over the batch, where
x is the d-vector and c the learnable class centres (parameters of this loss, updated by the
same optimizer as the model; the paper updates them with their own rate alpha).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from model.losses.base import Loss


class CenterLoss(Loss):
    NAME = 'center'
    SETTINGS = {'center_weight': (0.01, 0.0, 10.0)}  # (default, low, high)

    def __init__(self, embedding_size: int, n_classes: int, margin: float = 0.0,
                 scale: float = 0.0, center_weight: float = 0.0):
        super().__init__(margin, scale, center_weight)
        self.centers = nn.Parameter(torch.randn(n_classes, embedding_size))

    def start_from_class_means(self, means: torch.Tensor) -> None:
        seen = means.norm(dim=1) > 0  # (n_classes,): a class never seen keeps its centre
        with torch.no_grad():         # (n_classes, E): the centres are the class means
            self.centers[seen] = means[seen].to(self.centers.dtype)

    def center_term(self, embedding: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """1/2 mean squared distance of each d-vector to its class centre."""
        return 0.5 * (embedding.float() - self.centers[targets]).pow(2).sum(dim=1).mean()

    def forward(self, embedding: torch.Tensor, logits: torch.Tensor,
                targets: torch.Tensor) -> tuple:
        loss = F.cross_entropy(logits.float(), targets)
        return loss + self.center_weight * self.center_term(embedding, targets), logits
