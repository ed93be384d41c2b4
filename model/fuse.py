"""Inference-only folds: each BatchNorm2d into the convolution before it (a speed-up), and an
affine map of the embedding into fc0, or in its place (whitening.py's).

In eval mode a BatchNorm is a fixed per-channel scale and shift, so it can be merged into the
preceding convolution's weights and bias (``torch.nn.utils.fusion``). The outputs stay equal
(to float rounding) and one memory pass per convolution disappears: on a CPU the BatchNorms of
the narrow ResNet take about 15 % of an embedding's time. The folded model cannot be trained.
"""
import torch
import torch.nn as nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def conv_bn_pairs(module: nn.Module) -> list:
    """Names (conv, bn) of the module's direct children where the BN follows the conv: adjacent
    in an nn.Sequential, or named convN/bnN as in the ResNet blocks."""
    children = dict(module.named_children())
    if isinstance(module, nn.Sequential):
        names = list(children)
        pairs = zip(names, names[1:])
    else:
        pairs = ((f'conv{i}', f'bn{i}') for i in range(1, 4))
    return [(conv, bn) for conv, bn in pairs
            if isinstance(children.get(conv), nn.Conv2d)
            and isinstance(children.get(bn), nn.BatchNorm2d)]


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold conv -> BN pairs in place (the BN becomes Identity); returns the model in eval mode."""
    model.eval()
    for module in list(model.modules()):
        for conv, bn in conv_bn_pairs(module):
            fused = fuse_conv_bn_eval(getattr(module, conv), getattr(module, bn))
            setattr(module, conv, fused)
            setattr(module, bn, nn.Identity())
    return model


@torch.no_grad()
def fold_whitening(model: nn.Module, whitening: dict) -> nn.Module:
    """fc0 outputs T (W x + b - mean) instead of W x + b; with whitening['layer'] 'pooling'
    (whitening + LDA of fc0's input x), M (x - mean) instead. Inference only: the classifier
    after fc0 was trained on the old embedding."""
    fc0, matrix = model.fc0, whitening['matrix'].to(model.fc0.weight.device)
    mean = whitening['mean'].to(fc0.weight.device)
    if whitening.get('layer') == 'pooling':
        fc0.weight.copy_(matrix)  # (E, D): raises if the map was fitted on another model
        fc0.bias.copy_(-matrix @ mean)
        return model
    fc0.bias.copy_(matrix @ (fc0.bias - mean))
    fc0.weight.copy_(matrix @ fc0.weight)
    return model
