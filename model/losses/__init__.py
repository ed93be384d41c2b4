"""Training losses found by name: ``build_loss(loss_type, embedding_size, n_classes, margin,
scale, center_weight)``.

Every loss is a module called as ``loss(embedding, logits, targets) -> (loss, class_scores)``:
``embedding`` is the model's d-vector (fc0's output), ``logits`` its ``last`` layer's output,
``class_scores`` (B, n_classes) what accuracy is measured on. The softmax losses use the
model's ``last`` logits; the margin losses (A-, AM-, AAM-softmax) classify the d-vector with
their own cosine classifier, whose weights live in the loss (saved in checkpoints as
``loss_state_dict``), and leave ``last`` unused. Enrollment and scoring use the d-vector in
every case, so they never need the loss.

``margin`` and ``scale`` at 0 mean the loss's default; a loss that has no margin or scale
refuses a non-zero one. Adding a loss is one file here and one line in LOSSES.
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


def check_range(name: str, value: float, bounds: tuple, loss_type: str) -> None:
    low, high = bounds
    if not low < value <= high:
        raise SetupError(f'{name}={value:g} is out of range for loss_type={loss_type!r}: '
                         f'expected {low:g} < {name} <= {high:g} (0 = default)')


def loss_settings(loss_type: str, margin: float = 0.0, scale: float = 0.0) -> tuple:
    """(margin, scale) with the loss's defaults filled in; SetupError naming a bad setting."""
    if loss_type not in LOSSES:
        raise SetupError(f'unknown loss_type {loss_type!r}; known: ' + ', '.join(LOSSES))
    cls = LOSSES[loss_type]
    values = []
    for name, value, default, bounds in (('margin', margin, cls.DEFAULT_MARGIN, cls.MARGIN_RANGE),
                                         ('scale', scale, cls.DEFAULT_SCALE, cls.SCALE_RANGE)):
        if bounds is None:
            if value:
                raise SetupError(f'{name}={value:g}: loss_type={loss_type!r} has no {name} '
                                 f'(leave it at 0)')
            values.append(0.0)
            continue
        value = value or default
        if value or default:  # a default of 0 means 'not used' (A-softmax: the feature norm)
            check_range(name, value, bounds, loss_type)
        values.append(value)
    return tuple(values)


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
               scale: float = 0.0, center_weight: float = 0.01) -> nn.Module:
    margin, scale = loss_settings(loss_type, margin, scale)
    if loss_type == 'center':
        if not 0 < center_weight <= 10:
            raise SetupError(f'center_weight={center_weight:g} is out of range: expected '
                             '0 < center_weight <= 10')
        return CenterLoss(embedding_size, n_classes, center_weight=center_weight)
    return LOSSES[loss_type](embedding_size, n_classes, margin=margin, scale=scale)
