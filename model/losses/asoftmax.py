"""A-softmax / SphereFace (Liu et al., CVPR 2017), with the paper's annealing.

Class weights are L2-normalised (no bias) and the d-vector keeps its norm ||x||. The target
logit is ||x|| psi(theta) with the monotone extension of cos(m theta)

    psi(theta) = (-1)^k cos(m theta) - 2k,   theta in [k pi/m, (k+1) pi/m],  k = 0..m-1,

and other logits ||x|| cos theta. Training starts near plain softmax: the target logit used is
(lambda ||x|| cos theta + ||x|| psi(theta)) / (1 + lambda), with
lambda = max(5, 1000 / (1 + 0.12 iteration)) (the reference Caffe settings: base 1000,
gamma 0.12, power 1, lambda_min 5), the iteration counted in a buffer saved with the loss.
``margin`` is the integer m (default 4); ``scale`` > 0 replaces ||x|| by s (normalised
features, a later variant); 0 (default) keeps ||x||.
"""
import math

import torch
import torch.nn.functional as F

from configure import SetupError
from model.losses.base import Loss
from model.losses.margin import CosineClassifier, one_hot

LAMBDA_BASE, LAMBDA_GAMMA, LAMBDA_MIN = 1000.0, 0.12, 5.0


def psi(cosine: torch.Tensor, m: int) -> torch.Tensor:
    """(-1)^k cos(m theta) - 2k: decreasing in theta over [0, pi], equal to cos theta for m=1."""
    theta = torch.acos(cosine.clamp(-1 + 1e-7, 1 - 1e-7))
    k = torch.floor(theta * m / math.pi)
    sign = 1.0 - 2.0 * torch.remainder(k, 2)
    return sign * torch.cos(m * theta) - 2.0 * k


class ASoftmaxLoss(Loss):
    NAME = 'asoftmax'
    USES_LOGITS = False  # the model's `last` layer is unused (DDP: find_unused_parameters)
    # (default, low, high); a scale of 0 = the feature norm (SphereFace)
    SETTINGS = {'margin': (4.0, 0.0, 6.0), 'scale': (0.0, 0.0, 128.0)}

    def __init__(self, embedding_size: int, n_classes: int, margin: float = 0.0,
                 scale: float = 0.0, center_weight: float = 0.0):
        super().__init__(margin, scale, center_weight)
        if self.margin != int(self.margin):
            raise SetupError(f'margin={self.margin:g}: A-softmax needs an integer margin m '
                             '(1 to 6, usually 4)')
        self.m = int(self.margin)
        self.classifier = CosineClassifier(embedding_size, n_classes)
        self.register_buffer('iteration', torch.zeros((), dtype=torch.long))

    def start_from_class_means(self, means: torch.Tensor) -> None:
        self.classifier.start_at(means)

    def current_lambda(self) -> float:
        return max(LAMBDA_MIN, LAMBDA_BASE / (1 + LAMBDA_GAMMA * self.iteration.item()))

    def margin_logits(self, embedding: torch.Tensor, targets: torch.Tensor,
                      lamb: float = 0.0) -> tuple:
        """(logits with the margin on the target class, logits without)."""
        cosine = self.classifier(embedding)
        norm = self.scale if self.scale > 0 else embedding.float().norm(dim=1, keepdim=True)
        target_cos = (lamb * cosine + psi(cosine, self.m)) / (1 + lamb)
        target = one_hot(targets, cosine.shape[1])
        return norm * torch.where(target, target_cos, cosine), norm * cosine

    def forward(self, embedding: torch.Tensor, logits: torch.Tensor,
                targets: torch.Tensor) -> tuple:
        lamb = self.current_lambda()
        if self.training:
            self.iteration += 1
        with_margin, plain = self.margin_logits(embedding, targets, lamb)
        return F.cross_entropy(with_margin, targets), plain.detach()
