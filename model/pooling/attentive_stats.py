"""Attentive statistics pooling (Okabe et al., Interspeech 2018).

A small attention network scores every frame (one weight per channel and frame, softmax over
frames, as in ECAPA-TDNN); the pooled vector is the weighted mean and standard deviation.
Frequency is stacked into the channels first, as in stats pooling.
"""
import torch
import torch.nn as nn

from model.pooling.stats import flatten_freq, mean_std


class AttentiveStatsPooling(nn.Module):
    def __init__(self, channels: int, freq: int, bottleneck: int = 128):
        super().__init__()
        dim = channels * freq
        self.out_dim = 2 * dim
        self.attention = nn.Sequential(
            nn.Conv1d(dim, bottleneck, kernel_size=1), nn.Tanh(),
            nn.Conv1d(bottleneck, dim, kernel_size=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = flatten_freq(x)                                       # (B, D, T)
        weights = torch.softmax(self.attention(x).float(), dim=-1)  # (B, D, T), sums to 1 over T
        return mean_std(x.float(), weights)                       # (B, 2D)


if __name__ == '__main__':  # shape check
    print(tuple(AttentiveStatsPooling(128, 5)(torch.randn(2, 128, 5, 13)).shape))  # (2, 1280)
