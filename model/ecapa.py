"""ECAPA-TDNN (Desplanques et al., Interspeech 2020), small: a time-delay network for (1, 40,
frames) filterbank input.

The 40 bands are the input channels of 1-D convolutions over frames, so every layer keeps all the
frames (no downsampling, unlike the ResNet). Three SE-Res2 blocks with dilations 2, 3 and 4 see
ever wider contexts; their outputs are concatenated (multi-layer feature aggregation) and mixed
by a 1x1 convolution. Use it with ``pooling='attentive_stats'`` (ECAPA's) or ``'stats'``.
"""
import torch
import torch.nn as nn

from model.model import TrunkModel, print_shape_check


def conv_relu_bn(in_ch: int, out_ch: int, kernel: int, dilation: int = 1) -> nn.Sequential:
    """Conv1d -> ReLU -> BN, ECAPA's order; 'same' padding keeps the number of frames."""
    return nn.Sequential(nn.Conv1d(in_ch, out_ch, kernel, dilation=dilation,
                                   padding=dilation * (kernel - 1) // 2),
                         nn.ReLU(inplace=True), nn.BatchNorm1d(out_ch))


class SERes2Block(nn.Module):
    """1x1 conv, Res2 dilated convs over channel groups, 1x1 conv, squeeze-excitation, residual."""

    def __init__(self, channels: int, dilation: int, scale: int = 8, se_bottleneck: int = 128):
        super().__init__()
        self.scale = scale
        width = channels // scale
        self.conv1 = conv_relu_bn(channels, channels, 1)
        self.res2 = nn.ModuleList(conv_relu_bn(width, width, 3, dilation)
                                  for _ in range(scale - 1))
        self.conv3 = conv_relu_bn(channels, channels, 1)
        self.se = nn.Sequential(nn.AdaptiveAvgPool1d(1), nn.Conv1d(channels, se_bottleneck, 1),
                                nn.ReLU(inplace=True), nn.Conv1d(se_bottleneck, channels, 1),
                                nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        groups = self.conv1(x).chunk(self.scale, dim=1)  # scale x (B, C/scale, T)
        outs, prev = [groups[0]], None                    # the first group passes unchanged
        for conv, group in zip(self.res2, groups[1:]):
            prev = conv(group if prev is None else group + prev)  # each sees the one before
            outs.append(prev)
        out = self.conv3(torch.cat(outs, dim=1))          # (B, C, T)
        return x + out * self.se(out)                     # channel weights (B, C, 1)


class ECAPA(nn.Module):
    def __init__(self, channels: int = 256, in_channels: int = 1, n_bands: int = 40):
        super().__init__()
        self.stem = conv_relu_bn(in_channels * n_bands, channels, 5)
        self.blocks = nn.ModuleList(SERes2Block(channels, d) for d in (2, 3, 4))
        self.aggregate = conv_relu_bn(3 * channels, 3 * channels, 1)
        self.out_channels = 3 * channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x.flatten(1, 2))                    # (B, 1, 40, T) -> (B, C, T)
        outs = []
        for block in self.blocks:
            x = block(x)
            outs.append(x)
        x = self.aggregate(torch.cat(outs, dim=1))        # (B, 3C, T)
        return x.unsqueeze(2)                             # (B, 3C, 1, T): F = 1 for the pooling


class background_ecapa(TrunkModel):
    def __init__(self, embedding_size: int, n_classes: int, backbone: str = 'ecapa',
                 in_channels: int = 1, pooling: str = 'avg', n_bands: int = 40,
                 channels: int = 256):
        super().__init__(embedding_size, n_classes, backbone, in_channels, pooling, n_bands,
                         trunk=ECAPA(channels, in_channels, n_bands))


if __name__ == '__main__':  # shape check (WeSpeaker style)
    print_shape_check(background_ecapa, pooling='attentive_stats')
