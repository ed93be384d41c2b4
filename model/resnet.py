"""The tutorial's narrow ResNet for 1-channel (1, 40, frames) filterbank input.

Like torchvision's ResNet but 16-32-64-128 channels and a 7x7 stride-1 stem whose max-pool is
defined but not used (as in the tutorial), so the small spectrogram keeps its resolution.
ResNet-18 is conv1 + 8 BasicBlocks of 2 convolutions + fc = 18 layers. ``ResNet.forward`` is
the whole classifier; the d-vector model (model.py's background_resnet) runs the layers up to
layer4 and puts its own head (pooling, fc0, last) in the place of avgpool and fc.
"""
from typing import Type, Union

import torch
import torch.nn as nn


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    def __init__(self, block: Type[Union[BasicBlock, Bottleneck]], layers: list,
                 in_channels: int = 1, stem_stride: int = 1, n_classes: int = 1000):
        super().__init__()
        self.inplanes = 16
        # stem_stride 2 halves bands and frames before layer1: a quarter of the compute
        self.conv1 = nn.Conv2d(in_channels, 16, kernel_size=7, stride=stem_stride, padding=3,
                               bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)  # defined, not used
        self.layer1 = self._make_layer(block, 16, layers[0])
        self.layer2 = self._make_layer(block, 32, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 64, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 128, layers[3], stride=2)
        self.out_channels = 128 * block.expansion
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        # n_classes=0: no classifier (background_resnet has its own head, fc0 and last)
        self.fc = nn.Linear(self.out_channels, n_classes) if n_classes else nn.Identity()
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, block, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))              # (B, 16, 40, T)
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)                                    # ... (B, 128*expansion, 5, T/8)
        return self.fc(torch.flatten(self.avgpool(x), 1))  # (B, n_classes)


def resnet18(**kw) -> ResNet:
    return ResNet(BasicBlock, [2, 2, 2, 2], **kw)


def resnet34(**kw) -> ResNet:
    return ResNet(BasicBlock, [3, 4, 6, 3], **kw)


def resnet50(**kw) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3], **kw)


def resnet101(**kw) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 23, 3], **kw)


def resnet152(**kw) -> ResNet:
    return ResNet(Bottleneck, [3, 8, 36, 3], **kw)


if __name__ == '__main__':  # shape check
    for make in (resnet18, resnet50):
        net = make(n_classes=240)
        n_layers = sum(isinstance(m, (nn.Conv2d, nn.Linear)) for name, m in net.named_modules()
                       if 'downsample' not in name)  # the 1x1 shortcut convs are not counted
        out = net(torch.randn(2, 1, 40, 100))
        print(make.__name__, tuple(out.shape), f'{n_layers} layers')  # resnet18 (2, 240) 18 layers
