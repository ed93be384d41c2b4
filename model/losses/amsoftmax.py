"""AM-softmax / CosFace (Wang et al. 2018): target logit s (cos theta - m), others s cos theta.

Defaults for speaker work: m = 0.2, s = 30.
"""
import torch

from model.losses.margin import MarginSoftmax, one_hot


class AMSoftmaxLoss(MarginSoftmax):
    DEFAULT_MARGIN, MARGIN_RANGE = 0.2, (0.0, 1.0)
    DEFAULT_SCALE, SCALE_RANGE = 30.0, (0.0, 128.0)

    def __init__(self, embedding_size: int, n_classes: int, margin: float = 0.2,
                 scale: float = 30.0, **unused):
        super().__init__(embedding_size, n_classes, margin, scale)

    def margin_logits(self, cosine: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        target = one_hot(targets, cosine.shape[1])
        return self.scale * torch.where(target, cosine - self.margin, cosine)
