"""AAM-softmax / ArcFace (Deng et al. 2019): target logit s cos(theta + m), others s cos theta.

theta + m beyond pi would make the target logit grow again, so where theta > pi - m the
target logit is s (cos theta - m sin m) instead (ArcFace's threshold; ``EASY_MARGIN = True``:
no margin where cos theta < 0). Defaults for speaker work: m = 0.2, s = 30.
"""
import math

import torch

from model.losses.margin import MarginSoftmax, one_hot


class AAMSoftmaxLoss(MarginSoftmax):
    NAME = 'aamsoftmax'
    SETTINGS = {'margin': (0.2, 0.0, 1.0), 'scale': (30.0, 0.0, 128.0)}  # (default, low, high)
    EASY_MARGIN = False  # True: no margin where cos theta < 0 (ArcFace's easy_margin)

    def __init__(self, embedding_size: int, n_classes: int, margin: float = 0.0,
                 scale: float = 0.0, center_weight: float = 0.0):
        super().__init__(embedding_size, n_classes, margin, scale, center_weight)
        margin = self.margin
        self.cos_m, self.sin_m = math.cos(margin), math.sin(margin)
        self.th, self.mm = math.cos(math.pi - margin), math.sin(math.pi - margin) * margin

    def margin_logits(self, cosine: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        sine = torch.sqrt((1.0 - cosine * cosine).clamp(min=1e-7))
        phi = cosine * self.cos_m - sine * self.sin_m  # cos(theta + m)
        if self.EASY_MARGIN:
            phi = torch.where(cosine > 0, phi, cosine)
        else:
            phi = torch.where(cosine > self.th, phi, cosine - self.mm)
        target = one_hot(targets, cosine.shape[1])
        return self.scale * torch.where(target, phi, cosine)
