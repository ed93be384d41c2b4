"""The d-vector model of the slides: ``background_resnet``.

A ResNet reads the (1, 40, frames) filterbank map; global average pooling over bands and frames
gives one vector per utterance; ``fc0`` maps it to the speaker embedding (the d-vector); BN and
ReLU follow, and ``last`` classifies the training speakers. ``forward`` returns
``(spk_embedding, out)``: the d-vector, used for enrollment and scoring, and the logits, used
only by the training loss.

Other backbones (vgg.py, lstm.py, ecapa.py) keep this head and swap the trunk (``TrunkModel``);
other poolings are in model/pooling/.
"""
import torch
import torch.nn as nn

from model import resnet
from model.pooling import build_pooling

RESNETS = {name: getattr(resnet, name)
           for name in ('resnet18', 'resnet34', 'resnet50', 'resnet101', 'resnet152')}


class background_resnet(nn.Module):
    """ResNet -> pooling (global average by default) -> fc0 -> BN -> ReLU -> last.
    ``pretrained`` is the slides' name for the ResNet (it is trained from scratch here too).
    With ``pooling='avg'`` the parameters and their names are the tutorial's. The class count
    is ``n_classes`` (the slides' keyword was ``num_classes``; the project has one name for it)
    and the band count ``n_bands``."""

    def __init__(self, embedding_size: int, n_classes: int, backbone: str = 'resnet18',
                 in_channels: int = 1, pooling: str = 'avg', n_bands: int = 40,
                 stem_stride: int = 1, trunk: nn.Module = None):
        super().__init__()
        self.backbone = backbone
        # the ResNet without its classifier (n_classes=0): fc0 and last take its place
        self.pretrained = trunk if trunk is not None else RESNETS[backbone](
            in_channels=in_channels, stem_stride=stem_stride, n_classes=0)
        n_freq = self.freq_after(in_channels, n_bands)
        self.pool = build_pooling(pooling, self.pretrained.out_channels, n_freq)
        self.fc0 = nn.Linear(self.pool.out_dim, embedding_size)
        self.bn0 = nn.BatchNorm1d(embedding_size)
        self.relu = nn.ReLU()
        self.last = nn.Linear(embedding_size, n_classes)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pretrained.conv1(x)    # (B, 16, 40, T)      (stem_stride s: bands, frames / s)
        x = self.pretrained.bn1(x)
        x = self.pretrained.relu(x)
        x = self.pretrained.layer1(x)   # (B, 16, 40, T)
        x = self.pretrained.layer2(x)   # (B, 32, 20, T/2)
        x = self.pretrained.layer3(x)   # (B, 64, 10, T/4)
        x = self.pretrained.layer4(x)   # (B, 128, 5, T/8)    (x4 channels for resnet50 and up)
        return x

    def forward(self, x: torch.Tensor) -> tuple:
        x = self.feature_map(x)                 # (B, 1, 40, T) -> (B, C, F, T')
        out = self.pool(x)                      # (B, D): avg -> C; stats -> 2*C*F
        spk_embedding = self.fc0(out)           # (B, embedding_size): the d-vector
        out = self.relu(self.bn0(spk_embedding))
        out = self.last(out)                    # (B, n_classes)
        return spk_embedding, out

    @torch.no_grad()
    def freq_after(self, in_channels: int, n_bands: int) -> int:
        """The frequency size of the feature map for ``n_bands`` input bands."""
        was_training = self.pretrained.training
        self.pretrained.eval()  # a dummy input must not move BatchNorm's running statistics
        out = self.feature_map(torch.zeros(1, in_channels, n_bands, 32))
        self.pretrained.train(was_training)
        return out.shape[2]


class TrunkModel(background_resnet):
    """background_resnet's head on another trunk, whose forward gives the (B, C, F, T') map."""

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        return self.pretrained(x)


def print_shape_check(make, pooling: str, lengths: tuple = (37, 100, 233)) -> None:
    """WeSpeaker-style check run by each model file: shapes at several lengths, size in M."""
    net = make(128, 240, pooling=pooling).eval()
    n_params = sum(p.numel() for p in net.parameters()) / 1e6
    for frames in lengths:
        emb, logits = net(torch.randn(2, 1, 40, frames))
        print(frames, tuple(emb.shape), tuple(logits.shape), f'{n_params:.2f} M')


if __name__ == '__main__':  # shape check
    print_shape_check(background_resnet, pooling='avg')  # 37 (2, 128) (2, 240) ...
