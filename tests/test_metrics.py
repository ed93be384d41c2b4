"""EER, minDCF, DET curve, threshold table and identification accuracy."""
import numpy as np
import pytest

from configure import SetupError
from dvector.metrics import (
    compute_eer,
    compute_min_dcf,
    det_curve,
    identification_accuracy,
    threshold_table,
)


def brute_force_rates(scores, labels, threshold):
    """Miss and false-alarm rates of 'accept when score > threshold', by counting."""
    target = [s for s, label in zip(scores, labels) if label == 1]
    nontarget = [s for s, label in zip(scores, labels) if label == 0]
    miss = sum(s <= threshold for s in target) / len(target)
    fa = sum(s > threshold for s in nontarget) / len(nontarget)
    return miss, fa


def brute_force_points(scores, labels):
    """Every operating point: thresholds at each score and below the lowest."""
    thresholds = sorted(set(scores)) + [min(scores) - 1.0]
    return [brute_force_rates(scores, labels, t) for t in thresholds]


def test_separated_scores_have_zero_eer_at_the_middle_of_the_gap():
    eer, thres = compute_eer([0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0])
    assert eer == 0.0
    assert thres == pytest.approx(0.55)  # halfway from the top non-target to the lowest target
    assert compute_min_dcf([0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0], 0.01) == 0.0


def test_reversed_scores_have_full_eer():
    eer, _ = compute_eer([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0])
    assert eer == pytest.approx(1.0)
    # the best trivial system costs exactly the normaliser
    assert compute_min_dcf([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0], 0.05) == pytest.approx(1.0)


def test_hand_computed_eer_with_interpolation():
    # targets 0.5, 0.9; non-targets 0.9 (tie), 0.1. Operating points (miss, fa):
    # t<0.1: (0, 1); t=0.1: (0, 0.5); t=0.5: (0.5, 0.5) -> the rates are equal: EER 50 %,
    # for every threshold from 0.5 up to the next score, 0.9: the threshold is halfway
    eer, thres = compute_eer([0.5, 0.9, 0.9, 0.1], [1, 1, 0, 0])
    assert eer == pytest.approx(0.5) and thres == pytest.approx(0.7)
    # targets 0.6, 0.4; non-targets 0.5, 0.3, 0.2, 0.1. Points: t=0.3: (0, 0.25);
    # t=0.4: (0.5, 0.25) -> miss - fa goes -0.25 -> +0.25: halfway, EER 0.25 at 0.35
    eer, thres = compute_eer([0.6, 0.4, 0.5, 0.3, 0.2, 0.1], [1, 1, 0, 0, 0, 0])
    assert eer == pytest.approx(0.25) and thres == pytest.approx(0.35)


def test_the_demo_models_gap_gets_a_threshold_that_float32_rounding_cannot_flip():
    # the shipped demo model's top non-target and lowest target scores (evaluate.py): the
    # threshold was the non-target's score itself, and the same trial computed with other
    # float32 sums (3e-8 higher) was accepted at it
    top_nontarget, low_target = 0.9922859, 0.9953260
    scores = np.array([0.95, 0.98, top_nontarget, low_target, 0.999], dtype=np.float32)
    labels = [0, 0, 0, 1, 1]
    eer, thres = compute_eer(scores, labels)
    assert eer == 0.0 and thres == pytest.approx((top_nontarget + low_target) / 2, abs=1e-7)
    for moved in (np.nextafter(scores, np.float32(2)), np.nextafter(scores, np.float32(-2))):
        rates = threshold_table(moved, labels, [thres, np.float32(thres)])
        assert [(r['false_accept'], r['false_reject']) for r in rates] == [(0, 0), (0, 0)]


@pytest.mark.parametrize('seed', [0, 1, 2, 3])
def test_the_eer_threshold_keeps_its_decisions_when_scores_round_differently(seed):
    # float32 scores with ties, as many targets as non-targets (so the rates are often equal
    # at a score: the old threshold sat on it): moving every score by one float32 step either
    # way, or storing the threshold as float32, changes no decision at the EER threshold
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat([0, 1], 20))
    scores = np.round(rng.normal(labels * 1.5, 1.0), 1).astype(np.float32)
    _, thres = compute_eer(scores, labels)
    assert not np.isin(np.float32(thres), scores)
    accepted = scores > thres
    for moved in (np.nextafter(scores, np.float32(9)), np.nextafter(scores, np.float32(-9))):
        assert np.array_equal(moved > thres, accepted)
        assert np.array_equal(moved > np.float32(thres), accepted)


def test_hand_computed_min_dcf():
    scores, labels = [0.6, 0.4, 0.5, 0.3, 0.2, 0.1], [1, 1, 0, 0, 0, 0]
    # points (miss, fa): (0,1) (0,.75) (0,.5) (0,.25) (.5,.25) (.5,0) (1,0)
    # p=0.5: min of 0.5*(miss+fa) = 0.125 at (0,.25); normaliser 0.5 -> 0.25
    assert compute_min_dcf(scores, labels, 0.5) == pytest.approx(0.25)
    # p=0.01: (.5,0) costs 0.005, normaliser 0.01 -> 0.5
    assert compute_min_dcf(scores, labels, 0.01) == pytest.approx(0.5)
    # c_miss=10, p=0.1: (0,.25) costs 0.225; normaliser min(1, 0.9) = 0.9 -> 0.25
    assert compute_min_dcf(scores, labels, 0.1, c_miss=10) == pytest.approx(0.25)


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_against_brute_force_on_random_scores(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 300)
    scores = np.round(rng.normal(labels * 1.2, 1.0), 2)  # rounding makes ties
    points = brute_force_points(list(scores), list(labels))
    miss, fa, thresholds = det_curve(scores, labels)
    np.testing.assert_allclose(sorted(zip(miss, fa)), sorted(points))
    # the EER lies between the best 'worse of the two rates' and the worst 'better of the two'
    eer, thres = compute_eer(scores, labels)
    lower = max(min(m, f) for m, f in points)
    upper = min(max(m, f) for m, f in points)
    assert lower - 1e-12 <= eer <= upper + 1e-12
    assert thresholds[0] < thres < thresholds[-1]
    for p in (0.01, 0.05, 0.5):
        best = min(m * p + f * (1 - p) for m, f in points) / min(p, 1 - p)
        assert compute_min_dcf(scores, labels, p) == pytest.approx(best)


def test_threshold_table_values():
    scores, labels = [0.95, 0.85, 0.7, 0.9, 0.6, 0.4], [1, 1, 1, 0, 0, 0]
    rows = threshold_table(scores, labels, [0.5, 0.8, 0.9])
    assert [r['threshold'] for r in rows] == [0.5, 0.8, 0.9]
    # 0.5: accept 5 of 6: all targets, 2 of 3 non-targets
    assert rows[0]['false_accept'] == pytest.approx(200 / 3)
    assert rows[0]['false_reject'] == 0 and rows[0]['accuracy'] == pytest.approx(400 / 6)
    # 0.8: accept 0.95 0.85 0.9: FA 1/3, FR 1/3 (0.7), accuracy 4/6
    assert rows[1]['false_accept'] == pytest.approx(100 / 3)
    assert rows[1]['false_reject'] == pytest.approx(100 / 3)
    # 0.9: score > thres, so the non-target at exactly 0.9 is rejected: FA 0, FR 2/3
    assert rows[2]['false_accept'] == 0 and rows[2]['false_reject'] == pytest.approx(200 / 3)
    assert rows[2]['accuracy'] == pytest.approx(400 / 6)


@pytest.mark.parametrize('labels, kind', [([1, 1, 1], 'target'), ([0, 0], 'non-target')])
def test_one_label_only_is_a_setup_error(labels, kind):
    scores = np.linspace(0, 1, len(labels))
    message = f'EER undefined: all {len(labels)} trials are {kind}'
    for call in (lambda: compute_eer(scores, labels),
                 lambda: compute_min_dcf(scores, labels, 0.01),
                 lambda: threshold_table(scores, labels, [0.5])):
        with pytest.raises(SetupError, match=message):
            call()


def test_identification_accuracy():
    scores = np.array([[0.9, 0.1, 0.2], [0.3, 0.2, 0.8], [0.1, 0.7, 0.6], [0.5, 0.4, 0.1]])
    assert identification_accuracy(scores, [0, 2, 2, 0]) == pytest.approx(75.0)
    with pytest.raises(SetupError):
        identification_accuracy(np.zeros((0, 3)), [])
