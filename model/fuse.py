"""Inference-only folds: each BatchNorm2d into the convolution before it (a speed-up), and
whitening.py's map of the embedding into fc0, in its place, or two such maps side by side.

In eval mode a BatchNorm is a fixed per-channel scale and shift, so it can be merged into the
preceding convolution's weights and bias (``torch.nn.utils.fusion``). The outputs stay equal
(to float rounding) and one memory pass per convolution disappears: on a CPU the BatchNorms of
the narrow ResNet take about 15 % of an embedding's time. The folded model cannot be trained.
"""
import copy

import torch
import torch.nn as nn
import torch.nn.functional as F
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


class FoldedBatchNorm(nn.Identity):
    """What a BatchNorm2d leaves behind once folded: nothing to compute, and ``print(model)``
    says where it went (``(bn1): FoldedBatchNorm(folded into conv1)``)."""

    def __init__(self, conv: str):
        super().__init__()
        self.conv = conv

    def extra_repr(self) -> str:
        return f'folded into ({self.conv})' if self.conv.isdigit() else f'folded into {self.conv}'


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold conv -> BN pairs in place (the BN becomes a FoldedBatchNorm, an Identity); returns
    the model in eval mode."""
    model.eval()
    for module in list(model.modules()):
        for conv, bn in conv_bn_pairs(module):
            fused = fuse_conv_bn_eval(getattr(module, conv), getattr(module, bn))
            setattr(module, conv, fused)
            setattr(module, bn, FoldedBatchNorm(conv))
    return model


@torch.no_grad()
def whiten_linear(fc0: nn.Linear, mean: torch.Tensor, matrix: torch.Tensor,
                  layer: str) -> nn.Linear:
    """fc0, changed in place to output T (W x + b - mean) (layer 'embedding': a whitening T of
    its output), or M (x - mean) ('pooling': a map M of its input, whitening + LDA)."""
    matrix, mean = matrix.to(fc0.weight.device), mean.to(fc0.weight.device)
    if layer == 'pooling':
        fc0.weight.copy_(matrix)  # (E, D): raises if the map was fitted on another model
        fc0.bias.copy_(-matrix @ mean)
    else:
        fc0.bias.copy_(matrix @ (fc0.bias - mean))
        fc0.weight.copy_(matrix @ fc0.weight)
    return fc0


class JointWhitening(nn.Module):
    """fc0 for whitening layer 'both': the two whitened d-vectors of the pooled statistics
    (pooling + LDA, and fc0's output whitened), each normalised, side by side, / sqrt(2). The
    cosine of two such embeddings is the mean of the two whitenings' cosines."""

    def __init__(self, pooling: nn.Linear, embedding: nn.Linear):
        super().__init__()
        self.pooling, self.embedding = pooling, embedding

    def forward(self, x: torch.Tensor) -> torch.Tensor:                    # x: (B, D)
        halves = [F.normalize(self.pooling(x)), F.normalize(self.embedding(x))]  # 2 x (B, E)
        return torch.cat(halves, 1) / 2 ** 0.5                              # (B, 2E)


def whitened_fc0(fc0: nn.Linear, whitening: dict) -> nn.Module:
    """A copy of fc0 that outputs the whitened d-vector of whitening.py's ``whitening``."""
    layer = whitening.get('layer', 'embedding')
    if layer != 'both':
        return whiten_linear(copy.deepcopy(fc0), whitening['mean'], whitening['matrix'], layer)
    return JointWhitening(
        whiten_linear(copy.deepcopy(fc0), whitening['mean'], whitening['matrix'], 'pooling'),
        whiten_linear(copy.deepcopy(fc0), whitening['embedding_mean'],
                      whitening['embedding_matrix'], 'embedding'))


def fold_whitening(model: nn.Module, whitening: dict) -> nn.Module:
    """The model's fc0 replaced by whitened_fc0: it embeds with the whitening. Inference only:
    the classifier after fc0 was trained on the old embedding (with layer 'both', whose
    embedding is twice as long, bn0 and the classifier are dropped)."""
    model.fc0 = whitened_fc0(model.fc0, whitening)
    if isinstance(model.fc0, JointWhitening):
        model.bn0, model.last = nn.Identity(), nn.Identity()
    return model
