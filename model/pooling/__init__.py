"""Poolings found by name: ``build_pooling(name, channels, freq)``.

A pooling turns a backbone's feature map (B, channels, freq, frames) into one fixed-size vector
per utterance (B, out_dim), whatever the number of frames. Adding one is one file here and one
line in POOLINGS.
"""
import torch.nn as nn

from configure import SetupError
from model.pooling.attentive_stats import AttentiveStatsPooling
from model.pooling.avg import AvgPooling
from model.pooling.last import LastPooling
from model.pooling.stats import StatsPooling

POOLINGS = {
    'avg': AvgPooling,                         # the tutorial's global average pooling
    'stats': StatsPooling,                     # mean and std over frames (x-vector)
    'attentive_stats': AttentiveStatsPooling,  # attention-weighted mean and std
    'last': LastPooling,                       # the last frame (GE2E-style LSTM d-vector)
}


def build_pooling(name: str, channels: int, freq: int) -> nn.Module:
    if name not in POOLINGS:
        raise SetupError(f'unknown pooling {name!r}; known: ' + ', '.join(POOLINGS))
    return POOLINGS[name](channels, freq)
