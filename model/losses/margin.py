"""What the margin losses share: the cosine classifier (cos theta between the d-vector and each
class's weight vector, both L2-normalised) and, for AM- and AAM-softmax, the whole loss but the
target logit's formula (``margin_logits``)."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from model.losses.base import Loss


class CosineClassifier(nn.Module):
    def __init__(self, embedding_size: int, n_classes: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_classes, embedding_size))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        """(B, E) -> (B, n_classes) cosines, computed in float32 even under autocast."""
        with torch.autocast(device_type=embedding.device.type, enabled=False):
            return F.linear(F.normalize(embedding.float()), F.normalize(self.weight.float()))

    def start_at(self, means: torch.Tensor) -> None:
        """Each class's weight vector becomes the direction of its (n_classes, E) mean d-vector;
        a class whose mean is all zeros (never seen) keeps its weights."""
        seen = means.norm(dim=1) > 0                               # (n_classes,)
        with torch.no_grad():
            self.weight[seen] = F.normalize(means[seen].float()).to(self.weight.dtype)


def one_hot(targets: torch.Tensor, n_classes: int) -> torch.Tensor:
    return F.one_hot(targets, n_classes).bool()


class MarginSoftmax(Loss):
    """Cross-entropy on s * (cosines with a margin on the target class); accuracy on s * cos."""
    USES_LOGITS = False  # the model's `last` layer is unused (DDP: find_unused_parameters)

    def __init__(self, embedding_size: int, n_classes: int, margin: float = 0.0,
                 scale: float = 0.0, center_weight: float = 0.0):
        super().__init__(margin, scale, center_weight)
        self.classifier = CosineClassifier(embedding_size, n_classes)

    def start_from_class_means(self, means: torch.Tensor) -> None:
        self.classifier.start_at(means)

    def margin_logits(self, cosine: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, embedding: torch.Tensor, logits: torch.Tensor,
                targets: torch.Tensor) -> tuple:
        cosine = self.classifier(embedding)
        loss = F.cross_entropy(self.margin_logits(cosine, targets), targets)
        return loss, self.scale * cosine.detach()
