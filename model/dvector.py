"""The d-vector head shared by every backbone: trunk -> pooling -> fc0 (the d-vector) -> BN ->
ReLU -> last (the speaker classifier).

A trunk maps (B, in_channels, bands, frames) to a feature map (B, C, F, T') and has an
``out_channels`` attribute; F is measured once with a dummy input. ``forward`` returns
``(embedding, logits)``: the embedding is always fc0's output, whatever the backbone, pooling or
loss, so enrollment and scoring never depend on how the model was trained.
"""
import torch
import torch.nn as nn

from model.pooling import build_pooling


@torch.no_grad()
def freq_after(trunk: nn.Module, in_channels: int, n_bands: int) -> int:
    """The frequency size of the trunk's output for ``n_bands`` input bands."""
    was_training = trunk.training
    out = trunk.eval()(torch.zeros(1, in_channels, n_bands, 32))
    trunk.train(was_training)
    return out.shape[2]


class DvectorModel(nn.Module):
    def __init__(self, trunk: nn.Module, embedding_size: int, num_classes: int,
                 pooling: str = 'avg', in_channels: int = 1, n_bands: int = 40):
        super().__init__()
        self.pretrained = trunk  # the tutorial's name for the backbone
        self.pool = build_pooling(pooling, trunk.out_channels,
                                  freq_after(trunk, in_channels, n_bands))
        self.fc0 = nn.Linear(self.pool.out_dim, embedding_size)
        self.bn0 = nn.BatchNorm1d(embedding_size)
        self.relu = nn.ReLU()
        self.last = nn.Linear(embedding_size, num_classes)

    def forward(self, x: torch.Tensor) -> tuple:
        x = self.pretrained(x)                # (B, C, F, T'): e.g. ResNet (B, 128, 5, T/8)
        x = self.pool(x)                      # (B, D): avg -> C, stats -> 2*C*F
        spk_embedding = self.fc0(x)           # (B, embedding_size): the d-vector
        out = self.relu(self.bn0(spk_embedding))
        return spk_embedding, self.last(out)  # (B, E), (B, n_classes)


def print_shape_check(make, pooling: str, lengths: tuple = (37, 100, 233)) -> None:
    """WeSpeaker-style check run by each model file: shapes at several lengths, size in M."""
    net = make(128, 240, pooling=pooling).eval()
    n_params = sum(p.numel() for p in net.parameters()) / 1e6
    for frames in lengths:
        emb, logits = net(torch.randn(2, 1, 40, frames))
        print(frames, tuple(emb.shape), tuple(logits.shape), f'{n_params:.2f} M')
