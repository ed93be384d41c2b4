"""Calibrated, duration-aware scores: the cosine score turned into a log-likelihood ratio.

A cosine score means different things at different lengths (scores fall as recordings get
shorter), so one threshold cannot serve every length. A linear logistic-regression calibration
(the BOSARIS toolkit's, with the "quality measure functions" of WeSpeaker and ASV-Subtools)
maps a score and both sides' seconds of speech to an LLR, the natural log of

    P(score | same speaker) / P(score | different speakers):

    llr = a * score + b + c1 * q_min + c2 * q_max + score * (d1 * q_min + d2 * q_max)

with q_min, q_max the log of the shorter and the longer side's seconds of speech (clipped to
the range the calibration was fitted on: it is not extrapolated). The score terms let the
spread of the scores change with length, the offsets their centre. tools/calibrate.py fits it
on trials of the training speakers and stores it in the checkpoint (CALIBRATION_KEY) with what
it was fitted on. A decision is made at the Bayes threshold of a stated operating point
(p_target, c_miss, c_fa), the LLR above which accepting costs less than rejecting.
"""
import datetime
import math
from typing import NamedTuple, Optional

import numpy as np
from scipy.special import expit, logit

from configure import SetupError
from dvector.checkpoint import add_to_checkpoint

CALIBRATION_KEY = 'score_calibration'  # {scoring: record}; see fit_calibration
TERMS = ('score', 'offset', 'log_min_s', 'log_max_s', 'score*log_min_s', 'score*log_max_s')
FIT_PRIOR = 0.5  # the prior the fit weights targets and non-targets by (BOSARIS's default)
# The default operating point: a claimed speaker is as likely to be who they say as not (the
# student trying their own voice against a friend's), and both errors cost the same. There the
# Bayes threshold is LLR 0, which keeps false accepts and false rejects near the EER together;
# p_target 0.01 (NIST's) would reject most genuine short recordings to avoid rare impostors.
DEFAULT_P_TARGET = 0.5
DEFAULT_C_MISS = 1.0
DEFAULT_C_FA = 1.0


class OperatingPoint(NamedTuple):
    """A decision's costs: the prior of a target trial and the cost of each error."""
    p_target: float = DEFAULT_P_TARGET
    c_miss: float = DEFAULT_C_MISS
    c_fa: float = DEFAULT_C_FA


DEFAULT_POINT = OperatingPoint()


def check_operating_point(p_target: float, c_miss: float = 1.0,
                          c_fa: float = 1.0) -> OperatingPoint:
    """The operating point, or SetupError naming the setting outside its range."""
    if not (isinstance(p_target, (int, float)) and 0 < p_target < 1):
        raise SetupError(f'p_target={p_target}: a prior probability lies strictly between 0 '
                         'and 1')
    for name, cost in (('c_miss', c_miss), ('c_fa', c_fa)):
        if not (isinstance(cost, (int, float)) and 0 < cost < math.inf):
            raise SetupError(f'{name}={cost}: a cost is a positive, finite number')
    return OperatingPoint(float(p_target), float(c_miss), float(c_fa))


def bayes_threshold(p_target: float, c_miss: float = 1.0, c_fa: float = 1.0) -> float:
    """The LLR above which accepting is the cheaper decision:
    -log(p / (1 - p)) + log(c_fa / c_miss)."""
    point = check_operating_point(p_target, c_miss, c_fa)
    return float(-logit(point.p_target) + math.log(point.c_fa / point.c_miss))


def point_text(point: OperatingPoint) -> str:
    """'p_target 0.5, c_miss 1, c_fa 1'."""
    return f'p_target {point.p_target:g}, c_miss {point.c_miss:g}, c_fa {point.c_fa:g}'


def describe_point(point: OperatingPoint) -> str:
    """'p_target 0.5, c_miss 1, c_fa 1 (LLR threshold 0.00)'."""
    return f'{point_text(point)} (LLR threshold {bayes_threshold(*point):.2f})'


def llr_words(llr: float, who: str = 'the claimed speaker') -> str:
    """The LLR in words: '40 times more likely the claimed speaker than another speaker'
    (``who``: whom the LLR is for, e.g. identification's best match)."""
    if not math.isfinite(llr):
        raise ValueError(f'llr={llr}: not a finite log-likelihood ratio')
    ratio = math.exp(min(abs(llr), 700.0))
    if ratio < 1.05:
        return f'about as likely {who} as another speaker'
    shown = f'{ratio:.1f}' if ratio < 10 else (f'{ratio:,.0f}' if ratio < 1e6
                                              else 'over a million')
    if llr > 0:
        return f'{shown} times more likely {who} than another speaker'
    return f'{shown} times more likely another speaker than {who}'


def posterior(llr: float, p_target: float) -> float:
    """P(same speaker | score) at the prior p_target."""
    return float(expit(llr + logit(p_target)))


# ---- the calibration's design and fit ---------------------------------------------------------

def design_matrix(scores, seconds_a, seconds_b, seconds_range: tuple) -> np.ndarray:
    """(n, len(TERMS)) values of each term for n trials; durations clipped to seconds_range."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    low, high = seconds_range
    a = np.clip(np.asarray(seconds_a, dtype=np.float64).ravel(), low, high)
    b = np.clip(np.asarray(seconds_b, dtype=np.float64).ravel(), low, high)
    if not (scores.shape == a.shape == b.shape):
        raise ValueError(f'{scores.size} scores but {a.size} and {b.size} durations')
    q_min, q_max = np.log(np.minimum(a, b)), np.log(np.maximum(a, b))
    return np.stack([scores, np.ones_like(scores), q_min, q_max, scores * q_min,
                     scores * q_max], axis=1)


def weighted_cross_entropy(weights: np.ndarray, design: np.ndarray, labels: np.ndarray,
                           prior: float) -> tuple:
    """(BOSARIS's objective, its gradient): the prior-weighted cross-entropy, in bits, of
    the LLRs design @ weights. Targets weigh prior in all, non-targets 1 - prior."""
    llr = design @ weights + logit(prior)
    sign = np.where(labels, -1.0, 1.0)         # targets want a high LLR, non-targets a low one
    trial_weight = np.where(labels, prior / labels.sum(), (1 - prior) / (~labels).sum())
    loss = np.sum(trial_weight * np.logaddexp(0.0, sign * llr)) / math.log(2)
    slope = trial_weight * sign * expit(sign * llr) / math.log(2)
    return loss, design.T @ slope


def minimize_cross_entropy(start: np.ndarray, design: np.ndarray, labels: np.ndarray,
                           prior: float):
    """scipy's L-BFGS result of weighted_cross_entropy over the weights of ``design``'s columns,
    from ``start``."""
    from scipy.optimize import minimize  # only where a fit is made: 0.3 s off each script's start
    return minimize(weighted_cross_entropy, start, args=(design, labels, prior), jac=True,
                    method='L-BFGS-B')


def fit_calibration(scores, labels, seconds_a, seconds_b, fitted_on: dict = None,
                    prior: float = FIT_PRIOR) -> dict:
    """Fit the calibration on trials (scores, 0/1 labels, both sides' seconds of speech) by
    prior-weighted logistic regression (scipy's L-BFGS); returns the record to store: the
    weights of TERMS, the duration range and trial counts, and ``fitted_on`` (data, date)."""
    labels = np.asarray(labels).astype(bool).ravel()
    if labels.all() or not labels.any():
        raise SetupError('a calibration needs both target and non-target trials')
    if not np.all(np.isfinite(np.asarray(scores, dtype=np.float64))):
        raise SetupError('a calibration needs finite scores (some are NaN or infinite)')
    seconds = np.concatenate([np.ravel(seconds_a), np.ravel(seconds_b)]).astype(np.float64)
    if not np.all(seconds > 0):
        raise SetupError('every trial needs a positive number of seconds of speech on each side')
    seconds_range = (float(seconds.min()), float(seconds.max()))
    design = design_matrix(scores, seconds_a, seconds_b, seconds_range)
    start = np.zeros(len(TERMS))
    start[0] = 10.0  # a cosine difference of 0.1 as one natural unit of evidence: near the end
    result = minimize_cross_entropy(start, design, labels, prior)
    if not np.all(np.isfinite(result.x)):
        raise SetupError('the calibration fit did not converge (scores not finite?)')
    return {'terms': list(TERMS), 'weights': [float(w) for w in result.x],
            'seconds_range': list(seconds_range), 'n_target': int(labels.sum()),
            'n_nontarget': int((~labels).sum()), 'prior': float(prior),
            'cllr_fit': float(result.fun),
            'date': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
            **(fitted_on or {})}


def apply_calibration(record: dict, scores, seconds_a, seconds_b) -> np.ndarray:
    """The (n,) LLRs of n trials' scores and both sides' seconds of speech."""
    design = design_matrix(scores, seconds_a, seconds_b, tuple(record['seconds_range']))
    return design @ np.asarray(record['weights'], dtype=np.float64)


def scoring_key(as_norm: int = 0) -> str:
    """One calibration per scoring, named as dvector/threshold.py names its thresholds."""
    return f'as_norm {as_norm}' if as_norm else 'cosine'


def model_calibration(checkpoint: dict, as_norm: int = 0):
    """The stored calibration of this scoring, or None when the model has none (or one this
    code cannot apply)."""
    record = (checkpoint.get(CALIBRATION_KEY) or {}).get(scoring_key(as_norm))
    if not isinstance(record, dict) or record.get('terms') != list(TERMS):
        return None
    weights, low_high = record.get('weights'), record.get('seconds_range')
    if not (isinstance(weights, list) and len(weights) == len(TERMS)
            and all(isinstance(w, float) and math.isfinite(w) for w in weights)
            and isinstance(low_high, list) and len(low_high) == 2
            and 0 < low_high[0] <= low_high[1]):
        return None
    return record


def store_calibration(path: str, record: dict, as_norm: int = 0, *, scored: dict) -> None:
    """Add the calibration to the checkpoint file at ``path`` (rewritten atomically); the
    weights and everything else in it stay as they are. ``scored``: the checkpoint it was
    fitted on, which the file must still hold (checkpoint.add_to_checkpoint)."""
    add_to_checkpoint(path, CALIBRATION_KEY, scoring_key(as_norm), record, scored)


def describe_calibration(record: dict) -> str:
    """'calibrated on 6000 trials of X (1.0-20.0 s of speech)[, rescaled on ...], date'."""
    low, high = record['seconds_range']
    second = (f", rescaled on {record['stage2_trials']} trials of "
              f"{record.get('stage2_utterances', '?')} utterances it was not trained on"
              if isinstance(record.get('stage2_trials'), int) else '')
    return (f"calibrated on {record['n_target'] + record['n_nontarget']} trials of "
            f"{record.get('data', '?')} ({low:.1f}-{high:.1f} s of speech){second}, "
            f"{record.get('date', '?')}")


def refit_scale_and_offset(record: dict, llrs, labels) -> dict:
    """The calibration with its LLRs mapped by the affine llr' = alpha * llr + beta that fits
    other trials (``llrs`` the record's own on them) best, by the same prior-weighted
    objective: a second stage on trials the first never saw (tools/calibrate.py: utterances
    the model was not trained on). The duration terms keep their shape."""
    labels = np.asarray(labels).astype(bool).ravel()
    if labels.all() or not labels.any():
        raise SetupError('a calibration needs both target and non-target trials')
    design = np.stack([np.asarray(llrs, dtype=np.float64).ravel(),
                       np.ones(labels.size)], axis=1)
    prior = record.get('prior', FIT_PRIOR)
    result = minimize_cross_entropy(np.array([1.0, 0.0]), design, labels, prior)
    alpha, beta = (float(x) for x in result.x)
    weights = [alpha * w for w in record['weights']]
    weights[TERMS.index('offset')] += beta
    return {**record, 'weights': weights, 'stage2_scale': alpha, 'stage2_offset': beta,
            'stage2_cllr': float(result.fun)}


# ---- decisions: one path for the scripts, score_wavs and the demo ----------------------------

class Decision(NamedTuple):
    """A verification decision and what it rests on.

    ``threshold`` is on the score (for a calibrated model: the score whose LLR is the Bayes
    threshold at these lengths); ``llr`` is None for a model without calibration."""
    score: float
    accept: bool
    threshold: float
    llr: Optional[float]
    meaning: str          # the LLR in words ('' without calibration)
    basis: str            # the threshold in words: whose it is, what it was measured on


def score_threshold(record: dict, llr_threshold: float, seconds_a: float,
                    seconds_b: float) -> float:
    """The score whose LLR is ``llr_threshold`` for these lengths (the LLR rises with the
    score); NaN if the calibration does not rise there."""
    at_zero, at_one = apply_calibration(record, [0.0, 1.0], [seconds_a] * 2, [seconds_b] * 2)
    slope = at_one - at_zero
    return float((llr_threshold - at_zero) / slope) if slope > 0 else math.nan


def decide(score: float, checkpoint: dict, seconds: tuple = (None, None), thres: float = 0.0,
           point: OperatingPoint = DEFAULT_POINT, as_norm: int = 0) -> Decision:
    """Accept or reject a score of the (enrolled, test) sides of ``seconds`` seconds of speech:
    ``thres`` when the user gives one (not 0); else, for a calibrated model, its LLR against
    the Bayes threshold of ``point``; else the model's stored threshold (or the class's 0.95),
    as dvector/threshold.py chooses it. A side of unknown length (None) counts as the
    calibration's longest (an enrollment from before lengths were recorded), said so."""
    from dvector.threshold import choose_threshold
    point = check_operating_point(*point)
    record = model_calibration(checkpoint, as_norm)
    llr, meaning, note = None, '', ''
    if record is not None:
        longest = record['seconds_range'][1]
        known = [longest if s is None else float(s) for s in seconds]
        if None in seconds:
            note = f'; a side of unrecorded length counted as {longest:.0f} s (enroll again)'
        llr = float(apply_calibration(record, [score], [known[0]], [known[1]])[0])
        meaning = llr_words(llr)
    if thres != 0:
        return Decision(score, score > thres, thres, llr, meaning,
                        f"{thres:g} (--thres): the user's threshold, on the score")
    if record is None:
        threshold, how = choose_threshold(0, checkpoint, as_norm)
        unused = '' if point == DEFAULT_POINT else f' ({point_text(point)} not used)'
        return Decision(score, score > threshold, threshold, None, '',
                        f'{how}; this model has no calibration{unused} (tools/calibrate.py '
                        'fits one)')
    llr_threshold = bayes_threshold(*point)
    default = ' (the default)' if point == DEFAULT_POINT else ''
    basis = (f'LLR {llr_threshold:.2f}, the Bayes threshold of {point_text(point)}'
             f'{default}; {describe_calibration(record)}{note}')
    return Decision(score, llr > llr_threshold,
                    score_threshold(record, llr_threshold, *known), llr, meaning, basis)


def identify(scores, speakers: list, checkpoint: dict, seconds: tuple,
             point: OperatingPoint = DEFAULT_POINT) -> tuple:
    """Open-set identification: (the best enrolled speaker, its Decision: None for a closed
    set; when the Decision rejects, the answer is 'none of the enrolled speakers').
    ``scores`` (N,) against ``speakers``; ``seconds`` is (the test's seconds of speech,
    {speaker: enrolled seconds}). The best is the highest LLR for a calibrated model (lengths
    differ by speaker), else the highest score; it is kept when its LLR passes the Bayes
    threshold of ``point``, or its score the model's stored threshold. A model with neither
    answers as the tutorial did (closed set: the best speaker, always)."""
    from dvector.threshold import model_threshold
    scores = [float(s) for s in scores]
    test_seconds, enrolled = seconds
    record = model_calibration(checkpoint)
    if record is None and model_threshold(checkpoint) is None:
        return speakers[int(np.argmax(scores))], None
    pairs = [(enrolled.get(s), test_seconds) for s in speakers]
    decisions = [decide(score, checkpoint, pair, point=point)
                 for score, pair in zip(scores, pairs)]
    rank = [d.llr for d in decisions] if record is not None else scores
    best = int(np.argmax(rank))
    return speakers[best], decisions[best]
