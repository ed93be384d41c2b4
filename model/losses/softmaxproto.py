"""Softmax + angular prototypical loss (Chung et al., "In defence of metric learning for speaker
recognition", Interspeech 2020).

loss = CE(last logits) + AP. The AP term compares crops with each other, so it needs batches
that hold two or more crops of a class: with this loss train.py draws its batches as pairs
(dvector/pair_batches.py: PairBatchSampler). For each class with two or more crops in the
batch, its last crop is the query and the mean of the others its prototype; each query is
classified among all the prototypes by ``w * cos(query, prototype)``, with w > 0 learnt from
10 as in the paper (its bias b is left out: adding one number to every logit does not change a
softmax). Validation measures the CE term only, so its loss keeps its meaning from epoch to epoch.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from model.losses.base import Loss


def queries_and_prototypes(embedding: torch.Tensor, targets: torch.Tensor) -> tuple:
    """(Q, E) queries and (Q, E) prototypes, one per class with two or more crops: the query is
    the class's last crop, the prototype the mean of its other crops."""
    classes, inverse, counts = torch.unique(targets, return_inverse=True, return_counts=True)
    position = torch.arange(len(targets), device=targets.device)
    last = torch.zeros_like(classes).scatter_reduce(0, inverse, position, 'amax')  # (C,)
    is_query = torch.zeros_like(targets, dtype=torch.bool)
    is_query[last] = True
    sums = torch.zeros(len(classes), embedding.size(1), dtype=embedding.dtype,
                       device=embedding.device)
    sums = sums.index_add(0, inverse[~is_query], embedding[~is_query])  # (C, E)
    repeated = counts >= 2
    prototypes = sums[repeated] / (counts[repeated] - 1).unsqueeze(1).to(embedding.dtype)
    return embedding[last[repeated]], prototypes


class SoftmaxProtoLoss(Loss):
    NAME, SETTINGS = 'softmaxproto', {}
    NEEDS_PAIRS = True   # train.py draws batches of same-class pairs for the AP term

    def __init__(self, embedding_size: int, n_classes: int, margin: float = 0.0,
                 scale: float = 0.0, center_weight: float = 0.0):
        super().__init__(margin, scale, center_weight)
        self.w = nn.Parameter(torch.tensor(10.0))

    def prototype_term(self, embedding: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of each query against all prototypes; 0 with fewer than two."""
        queries, prototypes = queries_and_prototypes(embedding.float(), targets)  # (Q, E) each
        if len(queries) < 2:
            return 0.0 * self.w  # still in the graph: DistributedDataParallel expects w's grad
        cos = F.normalize(queries) @ F.normalize(prototypes).T                    # (Q, Q)
        logits = self.w.clamp(min=1e-6) * cos
        return F.cross_entropy(logits, torch.arange(len(queries), device=logits.device))

    def forward(self, embedding: torch.Tensor, logits: torch.Tensor,
                targets: torch.Tensor) -> tuple:
        loss = F.cross_entropy(logits.float(), targets)
        if self.training:
            loss = loss + self.prototype_term(embedding, targets)
        return loss, logits
