"""AM-softmax / CosFace (Wang et al. 2018): target logit s (cos theta - m), others s cos theta.

Defaults for speaker work: m = 0.2, s = 30.
"""
import torch

from model.losses.margin import MarginSoftmax, one_hot


class AMSoftmaxLoss(MarginSoftmax):
    NAME = 'amsoftmax'
    SETTINGS = {'margin': (0.2, 0.0, 1.0), 'scale': (30.0, 0.0, 128.0)}  # (default, low, high)

    def margin_logits(self, cosine: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        target = one_hot(targets, cosine.shape[1])
        return self.scale * torch.where(target, cosine - self.margin, cosine)
