"""Statistics pooling (x-vector): the mean and standard deviation over frames.

Frequency is collapsed first by stacking it into the channels, (B, C, F, T) -> (B, C*F, T),
as ResNet speaker models do (r-vector, WeSpeaker), so the per-band detail is kept.
"""
import torch
import torch.nn as nn

EPS = 1e-5  # under the square root: finite gradients for constant (or one-frame) input


def flatten_freq(x: torch.Tensor) -> torch.Tensor:
    """(B, C, F, T) -> (B, C*F, T)."""
    return x.reshape(x.shape[0], -1, x.shape[-1])


def mean_std(x: torch.Tensor, weights: torch.Tensor = None) -> torch.Tensor:
    """(B, D, T) -> (B, 2D): [mean, std] over T, weighted when ``weights`` (B, D|1, T) sum to 1."""
    if weights is None:
        mean = x.mean(dim=-1)
        var = (x * x).mean(dim=-1) - mean * mean
    else:
        mean = (x * weights).sum(dim=-1)
        var = (x * x * weights).sum(dim=-1) - mean * mean
    return torch.cat([mean, torch.sqrt(var.clamp(min=0) + EPS)], dim=1)


class StatsPooling(nn.Module):
    def __init__(self, channels: int, freq: int):
        super().__init__()
        self.out_dim = 2 * channels * freq

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mean_std(flatten_freq(x).float())  # (B, C, F, T) -> (B, 2*C*F)


if __name__ == '__main__':  # shape check
    print(tuple(StatsPooling(128, 5)(torch.randn(2, 128, 5, 13)).shape))  # (2, 1280)
