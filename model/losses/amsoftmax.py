"""AM-softmax / CosFace (Wang et al. 2018): target logit s (cos theta - m), others s cos theta.

Defaults for speaker work: m = 0.2, s = 30.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from model.losses.margin import CosineClassifier, one_hot


class AMSoftmaxLoss(nn.Module):
    USES_LOGITS = False  # the model's `last` layer is unused (DDP: find_unused_parameters)
    DEFAULT_MARGIN, MARGIN_RANGE = 0.2, (0.0, 1.0)
    DEFAULT_SCALE, SCALE_RANGE = 30.0, (0.0, 128.0)

    def __init__(self, embedding_size: int, n_classes: int, margin: float = 0.2,
                 scale: float = 30.0, **unused):
        super().__init__()
        self.margin, self.scale = margin, scale
        self.classifier = CosineClassifier(embedding_size, n_classes)

    def margin_logits(self, cosine: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        target = one_hot(targets, cosine.shape[1])
        return self.scale * torch.where(target, cosine - self.margin, cosine)

    def forward(self, embedding: torch.Tensor, logits: torch.Tensor,
                targets: torch.Tensor) -> tuple:
        cosine = self.classifier(embedding)
        loss = F.cross_entropy(self.margin_logits(cosine, targets), targets)
        return loss, self.scale * cosine.detach()
