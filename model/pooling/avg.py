"""The tutorial's global average pooling: the mean over frequency and frames."""
import torch
import torch.nn as nn


class AvgPooling(nn.Module):
    def __init__(self, channels: int, freq: int):
        super().__init__()
        self.out_dim = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))  # (B, C, F, T) -> (B, C)


if __name__ == '__main__':  # shape check
    print(tuple(AvgPooling(128, 5)(torch.randn(2, 128, 5, 13)).shape))  # (2, 128)
