"""The last frame's features: the GE2E LSTM d-vector's choice (the state after the whole input).

Frequency is stacked into the channels (an LSTM's output has a frequency axis of 1).
"""
import torch
import torch.nn as nn


class LastPooling(nn.Module):
    def __init__(self, channels: int, freq: int):
        super().__init__()
        self.out_dim = channels * freq

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., -1].reshape(x.shape[0], -1)  # (B, C, F, T) -> (B, C*F)


if __name__ == '__main__':  # shape check
    print(tuple(LastPooling(256, 1)(torch.randn(2, 256, 1, 13)).shape))  # (2, 256)
