"""Models found by name: ``build_model(backbone, embedding_size, n_classes, pooling='avg')``.

Adding a backbone is one file under model/ and one line in BACKBONES; poolings are in
model/pooling/, losses in model/losses/. Arguments added later have defaults, so the
model_args of older checkpoints still rebuild their model.
"""
import torch.nn as nn

from configure import SetupError
from model.ecapa import background_ecapa
from model.lstm import background_lstm
from model.model import RESNETS, background_resnet
from model.vgg import background_vgg

BACKBONES = {name: background_resnet for name in RESNETS}
BACKBONES['vgg'] = background_vgg
BACKBONES['lstm'] = background_lstm
BACKBONES['ecapa'] = background_ecapa


def build_model(backbone: str, embedding_size: int, n_classes: int, **kwargs) -> nn.Module:
    if backbone not in BACKBONES:
        raise SetupError(f'unknown backbone {backbone!r}; known: ' + ', '.join(BACKBONES))
    return BACKBONES[backbone](embedding_size, n_classes, backbone=backbone, **kwargs)
