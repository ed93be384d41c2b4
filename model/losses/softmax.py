"""The tutorial's loss: cross-entropy on the model's ``last`` logits."""
import torch
import torch.nn.functional as F

from model.losses.base import Loss


class SoftmaxLoss(Loss):
    NAME, SETTINGS = 'softmax', {}  # no margin, scale or center weight

    def __init__(self, embedding_size: int, n_classes: int, margin: float = 0.0,
                 scale: float = 0.0, center_weight: float = 0.0):
        super().__init__(margin, scale, center_weight)

    def forward(self, embedding: torch.Tensor, logits: torch.Tensor,
                targets: torch.Tensor) -> tuple:
        return F.cross_entropy(logits.float(), targets), logits
