"""The d-vector model: a backbone, global average pooling, and the speaker classifier head.

``fc0``'s output is the speaker embedding (the d-vector); ``last`` classifies the training
speakers. ``forward`` returns ``(embedding, logits)``.
"""
import torch
import torch.nn as nn

from model import resnet

RESNETS = {name: getattr(resnet, name)
           for name in ('resnet18', 'resnet34', 'resnet50', 'resnet101', 'resnet152')}


class background_resnet(nn.Module):
    def __init__(self, embedding_size: int, num_classes: int, backbone: str = 'resnet18',
                 in_channels: int = 1):
        super().__init__()
        self.backbone = backbone
        self.pretrained = RESNETS[backbone](in_channels=in_channels)
        self.fc0 = nn.Linear(self.pretrained.out_channels, embedding_size)
        self.bn0 = nn.BatchNorm1d(embedding_size)
        self.relu = nn.ReLU()
        self.last = nn.Linear(embedding_size, num_classes)

    def forward(self, x: torch.Tensor) -> tuple:
        x = self.pretrained(x)                # (B, C, 5, T/8)
        x = x.mean(dim=(2, 3))                # (B, C): global average pool
        spk_embedding = self.fc0(x)           # (B, embedding_size)
        out = self.relu(self.bn0(spk_embedding))
        return spk_embedding, self.last(out)  # (B, E), (B, n_classes)


if __name__ == '__main__':  # shape check
    net = background_resnet(128, 240, 'resnet50')
    emb, logits = net.eval()(torch.randn(1, 1, 40, 100))
    print(tuple(emb.shape), tuple(logits.shape))  # (1, 128) (1, 240)
