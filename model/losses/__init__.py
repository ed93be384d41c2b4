"""Training losses found by name: ``build_loss(loss_type, embedding_size, n_classes, margin,
scale, center_weight)``; every loss is a model/losses/base.py ``Loss``.

Every loss is a module called as ``loss(embedding, logits, targets) -> (loss, class_scores)``:
``embedding`` is the model's d-vector (fc0's output), ``logits`` its ``last`` layer's output,
``class_scores`` (B, n_classes) what accuracy is measured on. The softmax losses use the
model's ``last`` logits; the margin losses (A-, AM-, AAM-softmax) classify the d-vector with
their own cosine classifier, whose weights live in the loss (saved in checkpoints as
``loss_state_dict``), and leave ``last`` unused. Enrollment and scoring use the d-vector in
every case, so they never need the loss.

``margin``, ``scale`` and ``center_weight`` at 0 mean the loss's default; a loss that has no
such setting refuses a non-zero one (its ``SETTINGS``). Adding a loss is one file here (a
``Loss`` subclass) and one line in LOSSES.
"""
import torch.nn as nn

from configure import SetupError
from model.losses.aamsoftmax import AAMSoftmaxLoss
from model.losses.amsoftmax import AMSoftmaxLoss
from model.losses.asoftmax import ASoftmaxLoss
from model.losses.center import CenterLoss
from model.losses.softmax import SoftmaxLoss
from model.losses.softmaxproto import SoftmaxProtoLoss

LOSSES = {
    'softmax': SoftmaxLoss,        # the tutorial's cross-entropy on the `last` logits
    'center': CenterLoss,          # softmax + center loss (Wen et al. 2016)
    'asoftmax': ASoftmaxLoss,      # SphereFace: cos(m theta), integer m (Liu et al. 2017)
    'amsoftmax': AMSoftmaxLoss,    # CosFace / AM-softmax: s (cos theta - m)
    'aamsoftmax': AAMSoftmaxLoss,  # ArcFace / AAM-softmax: s cos(theta + m)
    'softmaxproto': SoftmaxProtoLoss,  # softmax + angular prototypical (Chung et al. 2020)
}


def loss_class(loss_type: str) -> type:
    """The loss class of ``loss_type``; SetupError listing the known ones."""
    if loss_type not in LOSSES:
        raise SetupError(f'unknown loss_type {loss_type!r}; known: ' + ', '.join(LOSSES))
    return LOSSES[loss_type]


def loss_settings(loss_type: str, margin: float = 0.0, scale: float = 0.0,
                  center_weight: float = 0.0) -> dict:
    """{margin, scale, center_weight} with the loss's defaults filled in (0 where it has no
    such setting); SetupError naming a bad setting (the loss's own check, model/losses/base.py)."""
    return loss_class(loss_type).resolve_settings(margin, scale, center_weight)


class ModelWithLoss(nn.Module):
    """The model and its loss as one module, ``forward(inputs, targets) -> (loss, scores)``:
    what DistributedDataParallel wraps, so a margin loss's classifier weights (or the center
    loss's centres) are synchronised across ranks like the model's."""

    def __init__(self, model: nn.Module, loss: nn.Module):
        super().__init__()
        self.model, self.loss = model, loss

    def forward(self, inputs, targets) -> tuple:
        embedding, logits = self.model(inputs)  # (B, E) d-vectors, (B, n_classes) `last` logits
        return self.loss(embedding, logits, targets)


def build_loss(loss_type: str, embedding_size: int, n_classes: int, margin: float = 0.0,
               scale: float = 0.0, center_weight: float = 0.0) -> nn.Module:
    """The loss ``loss_type`` for (B, embedding_size) d-vectors and n_classes classes; each loss
    fills in its defaults for settings at 0 and checks their ranges itself."""
    return loss_class(loss_type)(embedding_size, n_classes, margin=margin, scale=scale,
                                 center_weight=center_weight)
