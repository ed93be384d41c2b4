"""A VGG-style CNN for (1, 40, frames) filterbank input (in the spirit of VGG-M/VGGVox, small).

Stacks of 3x3 conv + BN + ReLU with 2x2 max-pooling (ceil mode, so very short inputs work):
32 | 64 | 128 128 | 256 256 channels, frequency and time halved three times, as the ResNet's.
"""
import torch
import torch.nn as nn

from model.model import TrunkModel, print_shape_check

CONFIG = [32, 'M', 64, 'M', 128, 128, 'M', 256, 256]


class VGG(nn.Module):
    def __init__(self, config: list = CONFIG, in_channels: int = 1):
        super().__init__()
        layers, channels = [], in_channels
        for item in config:
            if item == 'M':
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            else:
                layers += [nn.Conv2d(channels, item, 3, padding=1, bias=False),
                           nn.BatchNorm2d(item), nn.ReLU(inplace=True)]
                channels = item
        self.features = nn.Sequential(*layers)
        self.out_channels = channels
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (B, 1, 40, T) -> (B, 256, 5, ceil(T/8))


class background_vgg(TrunkModel):
    def __init__(self, embedding_size: int, n_classes: int, backbone: str = 'vgg',
                 in_channels: int = 1, pooling: str = 'avg', n_bands: int = 40):
        super().__init__(embedding_size, n_classes, backbone, in_channels, pooling, n_bands,
                         trunk=VGG(in_channels=in_channels))


if __name__ == '__main__':  # shape check (WeSpeaker style)
    print_shape_check(background_vgg, pooling='stats')
