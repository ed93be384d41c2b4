"""Models found by name: ``build_model(backbone, embedding_size, n_classes)``.

Adding a backbone is one file under model/ and one line in BACKBONES.
"""
import torch.nn as nn

from cli import SetupError
from model.model import RESNETS, background_resnet

BACKBONES = {name: background_resnet for name in RESNETS}


def build_model(backbone: str, embedding_size: int, n_classes: int, **kwargs) -> nn.Module:
    if backbone not in BACKBONES:
        raise SetupError(f'unknown backbone {backbone!r}; known: ' + ', '.join(BACKBONES))
    return BACKBONES[backbone](embedding_size, n_classes, backbone=backbone, **kwargs)
