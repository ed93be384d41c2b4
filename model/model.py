"""The d-vector model: a backbone, global average pooling, and the speaker classifier head
(the head, with other poolings, is in model/dvector.py).

``fc0``'s output is the speaker embedding (the d-vector); ``last`` classifies the training
speakers. ``forward`` returns ``(embedding, logits)``.
"""
import torch

from model import resnet
from model.dvector import DvectorModel

RESNETS = {name: getattr(resnet, name)
           for name in ('resnet18', 'resnet34', 'resnet50', 'resnet101', 'resnet152')}


class background_resnet(DvectorModel):
    """The tutorial's model: ResNet -> pooling (global average by default) -> fc0 -> BN ->
    ReLU -> last. The head is shared with the other backbones (model/dvector.py); with
    ``pooling='avg'`` the parameters and their names are the tutorial's."""

    def __init__(self, embedding_size: int, num_classes: int, backbone: str = 'resnet18',
                 in_channels: int = 1, pooling: str = 'avg', n_bands: int = 40,
                 stem_stride: int = 1):
        super().__init__(RESNETS[backbone](in_channels=in_channels, stem_stride=stem_stride),
                         embedding_size, num_classes, pooling, in_channels, n_bands)
        self.backbone = backbone


if __name__ == '__main__':  # shape check
    net = background_resnet(128, 240, 'resnet50')
    emb, logits = net.eval()(torch.randn(1, 1, 40, 100))
    print(tuple(emb.shape), tuple(logits.shape))  # (1, 128) (1, 240)
