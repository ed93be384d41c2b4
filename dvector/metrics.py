"""Verification and identification metrics: EER, minDCF, DET curve, threshold table, top-1.

Decisions follow the tutorial's verification.py: a trial is accepted when its score is
*above* the threshold (``score > thres``). Labels are 1 for target trials (same speaker) and 0
for non-target trials. numpy only.
"""
import numpy as np

from configure import SetupError


def check_trials(scores, labels) -> tuple:
    """Scores and labels as float / bool arrays; SetupError unless both labels occur."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel()
    if scores.shape != labels.shape:
        raise ValueError(f'{scores.size} scores but {labels.size} labels')
    if not np.isin(labels, (0, 1)).all():
        raise ValueError('labels must be 0 (non-target) or 1 (target)')
    labels = labels.astype(bool)
    if scores.size == 0:
        raise SetupError('no trials to score')
    if labels.all() or not labels.any():
        kind = 'target' if labels.all() else 'non-target'
        raise SetupError(f'EER undefined: all {labels.size} trials are {kind} '
                         '(need both target and non-target trials)')
    return scores, labels


def det_curve(scores, labels) -> tuple:
    """(miss rate, false-alarm rate, thresholds) for every distinct operating point.

    Thresholds ascend from just below the lowest score (accept all: miss 0, false alarm 1)
    through every distinct score (at the highest one everything is rejected: miss 1, fa 0).
    """
    scores, labels = check_trials(scores, labels)
    thresholds = np.unique(scores)
    thresholds = np.concatenate([[np.nextafter(thresholds[0], -np.inf)], thresholds])
    target, nontarget = np.sort(scores[labels]), np.sort(scores[~labels])
    # miss: targets at or below t (rejected); false alarm: non-targets above t (accepted)
    miss = np.searchsorted(target, thresholds, side='right') / target.size
    fa = 1.0 - np.searchsorted(nontarget, thresholds, side='right') / nontarget.size
    return miss, fa, thresholds


def compute_eer(scores, labels) -> tuple:
    """(EER as a fraction, threshold): where miss and false-alarm rates are equal.

    Between two operating points both rates are interpolated linearly (the same as
    interpolating the ROC curve), so the EER need not be one of the observed rates. The
    threshold never lies on an observed score, where a score that moves by a rounding error
    (float32 sums on another machine) would flip its decision: where the rates are equal at a
    score (EER 0 when the targets and non-targets separate), it is halfway from that score, the
    highest one rejected, to the next, the lowest accepted; else it is interpolated like the
    rates, within the middle half of the gap between the two scores it falls between.
    """
    miss, fa, thresholds = det_curve(scores, labels)
    diff = miss - fa  # rises from -1 (all accepted) to +1 (all rejected) with the threshold
    i = int(np.argmax(diff >= 0))  # first point with miss >= false alarm (never 0: diff -1)
    if diff[i] == 0:  # equal from thresholds[i] up to the next score (diff rises at each)
        return float(miss[i]), float((thresholds[i] + thresholds[i + 1]) / 2)
    alpha = -diff[i - 1] / (diff[i] - diff[i - 1])
    eer = miss[i - 1] + alpha * (miss[i] - miss[i - 1])
    # every threshold between the two scores decides alike; a quarter of the gap away from
    # both, a score moved by less than that (rounding) keeps its decision
    alpha_in_gap = min(max(alpha, 0.25), 0.75)
    threshold = thresholds[i - 1] + alpha_in_gap * (thresholds[i] - thresholds[i - 1])
    return float(eer), float(threshold)


def compute_min_dcf(scores, labels, p_target: float, c_miss: float = 1.0,
                    c_fa: float = 1.0) -> float:
    """Normalised minimum detection cost (NIST SRE): min over thresholds of
    c_miss * P_miss * p_target + c_fa * P_fa * (1 - p_target), divided by the cost of the
    better trivial system, min(c_miss * p_target, c_fa * (1 - p_target))."""
    if not 0 < p_target < 1:
        raise SetupError(f'p_target={p_target}: must be between 0 and 1')
    miss, fa, _ = det_curve(scores, labels)
    dcf = c_miss * miss * p_target + c_fa * fa * (1 - p_target)
    return float(dcf.min() / min(c_miss * p_target, c_fa * (1 - p_target)))


def threshold_table(scores, labels, thresholds) -> list:
    """Per threshold: dict(threshold, false_accept %, false_reject %, accuracy %).

    False accept = non-target trials accepted / non-target trials; false reject = target
    trials rejected / target trials; accuracy = correct decisions / all trials.
    """
    scores, labels = check_trials(scores, labels)
    rows = []
    for thres in thresholds:
        accept = scores > thres
        rows.append({'threshold': float(thres),
                     'false_accept': 100.0 * float(np.mean(accept[~labels])),
                     'false_reject': 100.0 * float(np.mean(~accept[labels])),
                     'accuracy': 100.0 * float(np.mean(accept == labels))})
    return rows


def identification_accuracy(scores, true_index) -> float:
    """Closed-set top-1 accuracy (%): scores (M tests, N enrolled), true_index (M,)."""
    scores = np.asarray(scores)
    true_index = np.asarray(true_index)
    if scores.ndim != 2 or scores.shape[0] != true_index.size or true_index.size == 0:
        raise SetupError('identification needs at least one test of an enrolled speaker')
    return 100.0 * float(np.mean(scores.argmax(axis=1) == true_index))


# ---- calibration: how well LLRs (dvector/calibration.py) support decisions ------------------

def cllr(llrs, labels) -> float:
    """The log-likelihood-ratio cost (Brummer), in bits: 0 perfect, 1 an LLR of 0 everywhere;
    the mean over targets of log2(1 + e^-llr) and over non-targets of log2(1 + e^llr),
    averaged."""
    llrs, labels = check_trials(llrs, labels)
    target = np.mean(np.logaddexp(0.0, -llrs[labels]))
    nontarget = np.mean(np.logaddexp(0.0, llrs[~labels]))
    return float((target + nontarget) / (2 * np.log(2)))


def pav_llrs(scores, labels) -> np.ndarray:
    """The LLRs of the best monotone map of the scores on these very trials (pool adjacent
    violators, scipy's isotonic regression; tied scores share one value)."""
    from scipy.optimize import isotonic_regression
    scores, labels = check_trials(scores, labels)
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    share = np.bincount(inverse, weights=labels.astype(np.float64)) / counts
    posterior = isotonic_regression(share, weights=counts.astype(np.float64)).x[inverse]
    with np.errstate(divide='ignore'):
        log_odds = np.log(posterior) - np.log1p(-posterior)
    prior_odds = np.log(labels.sum()) - np.log((~labels).sum())
    return log_odds - prior_odds


def min_cllr(scores, labels) -> float:
    """Cllr after the best monotone calibration (PAV): what is lost to discrimination alone;
    Cllr - min Cllr is what is lost to calibration."""
    return cllr(pav_llrs(scores, labels), labels)


def actual_dcf(llrs, labels, p_target: float, c_miss: float = 1.0, c_fa: float = 1.0) -> tuple:
    """(normalised DCF, miss rate, false-alarm rate) of the decisions the LLRs make at their
    Bayes threshold (accept when llr > -logit(p_target) + log(c_fa / c_miss))."""
    if not 0 < p_target < 1:
        raise SetupError(f'p_target={p_target}: must be between 0 and 1')
    llrs, labels = check_trials(llrs, labels)
    threshold = -np.log(p_target / (1 - p_target)) + np.log(c_fa / c_miss)
    accept = llrs > threshold
    miss, fa = float(np.mean(~accept[labels])), float(np.mean(accept[~labels]))
    dcf = c_miss * miss * p_target + c_fa * fa * (1 - p_target)
    return float(dcf / min(c_miss * p_target, c_fa * (1 - p_target))), miss, fa
