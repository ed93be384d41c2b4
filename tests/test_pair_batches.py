"""dvector/pair_batches.py: batches of same-class pairs (softmaxproto's)."""
import pytest

from configure import SetupError
from dvector.pair_batches import PairBatchSampler


def test_pair_batches_hold_two_crops_of_one_speaker_at_one_speed():
    labels = [0] * 5 + [1] * 4 + [2] * 1 + [3] * 6  # odd counts and a single utterance
    sampler = PairBatchSampler(labels, batch_size=6, n_speeds=3, seed=2)
    for _ in range(2):  # two epochs: every utterance read, pairs drawn afresh
        batches = list(sampler)
        assert len(batches) == len(sampler) == 3  # 3 + 2 + 1 + 3 pairs, three to a batch
        items = [item for b in batches for item in b]
        assert {i for i, _ in items} == set(range(len(labels)))
        for b in batches:
            for (i, k), (j, k2) in zip(b[0::2], b[1::2]):
                assert labels[i] == labels[j] and k == k2 and 0 <= k < 3
                assert i != j or labels.count(labels[i]) == 1  # itself only when alone
    ranks = [list(PairBatchSampler(labels, 4, 3, seed=2, rank=r, world=2)) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 2 and ranks[0] != ranks[1]
    with pytest.raises(SetupError, match='batch_size=3: pairs of crops need batch_size >= 4'):
        PairBatchSampler(labels, 3)
    with pytest.raises(SetupError, match='8 processes but fewer batches of pairs'):
        PairBatchSampler(labels, 4, world=8)
