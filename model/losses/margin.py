"""The cosine classifier shared by the margin losses: cos(theta) between the d-vector and each
class's weight vector (both L2-normalised)."""
import torch
import torch.nn as nn
import torch.nn.functional as F


class CosineClassifier(nn.Module):
    def __init__(self, embedding_size: int, n_classes: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_classes, embedding_size))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        """(B, E) -> (B, n_classes) cosines, computed in float32 even under autocast."""
        with torch.autocast(device_type=embedding.device.type, enabled=False):
            return F.linear(F.normalize(embedding.float()), F.normalize(self.weight.float()))


def one_hot(targets: torch.Tensor, n_classes: int) -> torch.Tensor:
    return F.one_hot(targets, n_classes).bool()
