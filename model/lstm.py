"""An LSTM d-vector model (GE2E-style, Wan et al. 2018; Heigold et al. 2016).

A stack of 3 LSTM layers of 256 units reads the frames (40 bands each); the pooling then takes
the last frame's output (``pooling='last'``, as GE2E) or the mean over frames (``'avg'``, the
default here) or statistics; fc0 is the linear projection to the d-vector.
"""
import torch
import torch.nn as nn

from model.model import TrunkModel, print_shape_check


class LSTMTrunk(nn.Module):
    def __init__(self, in_channels: int = 1, n_bands: int = 40, hidden: int = 256,
                 num_layers: int = 3):
        super().__init__()
        self.lstm = nn.LSTM(in_channels * n_bands, hidden, num_layers=num_layers,
                            batch_first=True)
        self.out_channels = hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, ch, bands, frames = x.shape
        x = x.reshape(b, ch * bands, frames).transpose(1, 2)  # (B, T, 40)
        out, _ = self.lstm(x)                                  # (B, T, H)
        return out.transpose(1, 2).unsqueeze(2)                # (B, H, 1, T)


class background_lstm(TrunkModel):
    def __init__(self, embedding_size: int, n_classes: int, backbone: str = 'lstm',
                 in_channels: int = 1, pooling: str = 'avg', n_bands: int = 40):
        super().__init__(embedding_size, n_classes, backbone, in_channels, pooling, n_bands,
                         trunk=LSTMTrunk(in_channels, n_bands))


if __name__ == '__main__':  # shape check (WeSpeaker style)
    print_shape_check(background_lstm, pooling='last')
