"""Batches of same-class pairs for a loss that compares crops (``softmaxproto``, model/losses).

train.py hands ``PairBatchSampler`` to its DataLoader as ``batch_sampler``; the items it yields,
``(index, k)``, are read by ``SR_Dataset.DvectorDataset`` as a training crop of utterance
``index`` at speed ``k``.
"""
import random

from configure import SetupError


class PairBatchSampler:
    """Training batches for a loss that compares crops of one class (``softmaxproto``): each
    batch is ``batch_size // 2`` pairs, two crops of one class next to each other. A class is a
    speaker at one speed (k = 0 as recorded, k >= 1 the k-th speed factor), so both crops of a
    pair share k. Each epoch every speaker's utterances are shuffled and paired, an odd one out
    with another of the speaker's (with itself if it is the only one), and the pairs shuffled
    across speakers: every utterance is read at least once an epoch. Yields lists of (index, k).
    With several ranks each takes every ``world``-th batch, and all take the same number."""

    def __init__(self, labels: list, batch_size: int, n_speeds: int = 1, seed: int = 1,
                 rank: int = 0, world: int = 1):
        if batch_size < 4:
            raise SetupError(f'batch_size={batch_size}: pairs of crops need batch_size >= 4 '
                             '(two pairs or more per batch)')
        self.pairs_per_batch, self.n_speeds = batch_size // 2, n_speeds
        self.rank, self.world = rank, world
        self.rng = random.Random(seed)  # its own generator: the same batches on every rank
        self.by_speaker = {}
        for index, label in enumerate(labels):
            self.by_speaker.setdefault(label, []).append(index)
        if len(self) == 0:
            raise SetupError(f'{world} processes but fewer batches of pairs than that '
                             f'({len(labels)} training files, batch_size={batch_size})')

    def pairs(self) -> list:
        pairs = []
        for indices in self.by_speaker.values():
            order = self.rng.sample(indices, len(indices))
            if len(order) % 2:
                order.append(self.rng.choice(order[:-1] or order))
            for a, b in zip(order[0::2], order[1::2]):
                k = self.rng.randrange(self.n_speeds)
                pairs.append([(a, k), (b, k)])
        self.rng.shuffle(pairs)
        return pairs

    def __iter__(self):
        pairs, step = self.pairs(), self.pairs_per_batch
        batches = [sum(pairs[i:i + step], []) for i in range(0, len(pairs), step)]
        usable = len(batches) // self.world * self.world
        return iter(batches[self.rank:usable:self.world])

    def __len__(self) -> int:
        n_pairs = sum(-(-len(indices) // 2) for indices in self.by_speaker.values())
        return -(-n_pairs // self.pairs_per_batch) // self.world
