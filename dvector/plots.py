"""Figures: the training loss plot, and for the evaluation the DET curve, score histograms and
the speaker similarity heatmap.

Each function draws one figure and writes it atomically as a PNG (matplotlib's Agg backend,
so no display is needed).
"""
import matplotlib

matplotlib.use('Agg')
import math  # noqa: E402
from typing import Optional

import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402

from dvector.fileio import atomic_path  # noqa: E402
from dvector.metrics import check_trials, compute_eer, det_curve  # noqa: E402

DPI = 90                                             # small files for the README
DET_TICKS = [0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 40, 60, 80, 90, 95, 98, 99]  # percent


def save_figure(fig: plt.Figure, path: str) -> str:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format='png', dpi=DPI, bbox_inches='tight')
    plt.close(fig)
    return path


def loss_axis_top(train_loss: list, valid_loss: list) -> float:
    """The top of the loss axis: the slides' 3.5, or a little above the highest finite loss
    when a curve goes higher (in half units). Validation losses over 3 times the training
    curve's highest (the first epochs', before BatchNorm's running statistics settle) do not
    stretch it, or the rest of the curves would be flat lines at 0: plot_losses writes them
    at the top edge."""
    train = [v for v in train_loss if math.isfinite(v)]
    limit = 3 * max(train + [3.5])
    top = max(train + [v for v in valid_loss if math.isfinite(v) and v <= limit], default=0.0)
    return 3.5 if top <= 3.5 else math.ceil(top * 1.05 * 2) / 2


def plot_losses(epochs: list, train_loss: list, valid_loss: list, best: int, path: str) -> str:
    """The slides' loss plot: training and validation loss per epoch and a red dashed line at
    the epoch of the lowest validation loss (the checkpoint that enroll.py's cp_num = 0 loads).
    The y range is the slides' 0-3.5, grown only when a curve would leave it (early validation
    spikes far above the training loss are written at the top edge instead, so that the
    curves stay readable); a short run gets markers so that single points show."""
    fig = plt.figure(figsize=(10, 8))
    marker = 'o' if len(epochs) < 5 else None
    plt.plot(epochs, train_loss, label='Training Loss', marker=marker)
    plt.plot(epochs, valid_loss, label='Validation Loss', marker=marker)
    plt.axvline(best, linestyle='--', color='r', label='Early Stopping Checkpoint')
    plt.xlabel('epochs')
    plt.ylabel('loss')
    top = loss_axis_top(train_loss, valid_loss)
    plt.ylim(0, top)
    off_scale = [(e, v) for e, v in zip(epochs, valid_loss) if math.isfinite(v) and v > top]
    for k, (epoch, loss) in enumerate(off_scale):  # its value at the top edge, staggered
        plt.annotate(f'{loss:.1f} \u2191', (epoch, top), xytext=(0, -14 * (1 + k % 2)),
                     ha='center', textcoords='offset points', color='C1')
    plt.xlim(0, max(epochs) + 1)
    plt.grid(True)
    plt.legend()
    plt.tight_layout()
    return save_figure(fig, path)


def normal_deviate(p: np.ndarray) -> np.ndarray:
    """The standard normal's quantiles (scipy.stats is imported here: it takes ~0.7 s)."""
    from scipy.stats import norm
    return norm.ppf(p)


def probit(rate: np.ndarray, n_min: int) -> np.ndarray:
    """Normal deviate of a rate; 0 and 1 are clipped to half a trial so they stay on the plot."""
    eps = 0.5 / max(n_min, 1)
    return normal_deviate(np.clip(rate, eps, 1 - eps))


def plot_det(scores, labels, path: str, title: str = 'DET curve') -> str:
    """Miss vs false-alarm rate on normal-deviate axes, the EER point marked."""
    scores, labels = check_trials(scores, labels)
    miss, fa, _ = det_curve(scores, labels)
    eer, thres = compute_eer(scores, labels)
    n_min = min(labels.sum(), (~labels).sum())
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    ax.plot(probit(fa, n_min), probit(miss, n_min), label='DET curve')
    ax.plot([-5, 5], [-5, 5], ':', color='grey', linewidth=0.8, label='miss = false alarm')
    point = probit(np.array([eer]), n_min)[0]
    ax.plot(point, point, 'o', color='red',
            label=f'EER {100 * eer:.2f} % (threshold {thres:.3f})')
    low = probit(np.array([min(0.5 / n_min, 0.01)]), n_min)[0] - 0.1
    ticks = [t for t in DET_TICKS if normal_deviate(t / 100) >= low]
    for set_ticks, set_labels in ((ax.set_xticks, ax.set_xticklabels),
                                  (ax.set_yticks, ax.set_yticklabels)):
        set_ticks(normal_deviate(np.array(ticks) / 100))
        set_labels([f'{t:g}' for t in ticks])
    ax.set_xlim(low, normal_deviate(0.99))
    ax.set_ylim(low, normal_deviate(0.99))
    ax.set_xlabel('False alarm rate (%)')
    ax.set_ylabel('Miss rate (%)')
    ax.set_title(title)
    ax.grid(True, alpha=0.4)
    ax.legend(loc='upper right', fontsize=8)
    return save_figure(fig, path)


def plot_score_histograms(scores, labels, path: str, chosen: Optional[float],
                          title: str = 'Cosine scores of target and non-target trials') -> str:
    """Densities of target and non-target scores with the EER and chosen (unless None)
    thresholds."""
    scores, labels = check_trials(scores, labels)
    _, eer_thres = compute_eer(scores, labels)
    span = [scores.min(), scores.max()] + ([chosen] if chosen is not None else [])
    bins = np.linspace(min(span), max(span), 50)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.hist(scores[~labels], bins=bins, density=True, alpha=0.6, color='tab:blue',
            label=f'non-target ({(~labels).sum()} trials)')
    ax.hist(scores[labels], bins=bins, density=True, alpha=0.6, color='tab:orange',
            label=f'target ({labels.sum()} trials)')
    ax.axvline(eer_thres, color='red', linestyle='--', label=f'EER threshold {eer_thres:.3f}')
    if chosen is not None:
        ax.axvline(chosen, color='black', linestyle=':', label=f'chosen threshold {chosen:.3f}')
    ax.set_xlabel('Cosine similarity')
    ax.set_ylabel('Density (share of trials per unit score)')
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    return save_figure(fig, path)


def plot_similarity_heatmap(similarity, speakers: list, path: str,
                            title: str = 'Cosine similarity between enrolled speakers') -> str:
    """(N, N) speaker-by-speaker cosine similarity, values written in the cells."""
    similarity = np.asarray(similarity)
    n = len(speakers)
    size = max(4.0, 0.55 * n + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    low = similarity.min()  # colours span the values present, so small differences show
    high = max(similarity.max(), low + 1e-6)
    image = ax.imshow(similarity, cmap='viridis', vmin=low, vmax=high)
    fig.colorbar(image, ax=ax, label='cosine similarity')
    if n <= 25:  # numbers in the cells are unreadable beyond that
        middle = (high + low) / 2
        digits = 2 if high - low > 0.2 else 3
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f'{similarity[i, j]:.{digits}f}', ha='center', va='center',
                        fontsize=7 if digits == 2 else 6,
                        color='black' if similarity[i, j] > middle else 'white')
    ax.set_xticks(range(n))
    ax.set_xticklabels(speakers, rotation=90, fontsize=8)
    ax.set_yticks(range(n))
    ax.set_yticklabels(speakers, fontsize=8)
    ax.set_xlabel('enrolled speaker')
    ax.set_ylabel('enrolled speaker')
    ax.set_title(title)
    return save_figure(fig, path)


def plot_ape(llrs, labels, path: str, title: str = 'Calibration') -> str:
    """An applied-probability-of-error plot (Brummer): over prior log-odds -7..7, the
    normalised DCF of the LLRs' own Bayes decisions (actual) against the best threshold's
    (minimum) and the trivial system's (1); the gap between the first two is calibration loss."""
    from dvector.metrics import actual_dcf, compute_min_dcf
    log_odds = np.linspace(-7, 7, 57)
    priors = 1 / (1 + np.exp(-log_odds))
    actual = [actual_dcf(llrs, labels, p)[0] for p in priors]
    minimum = [compute_min_dcf(llrs, labels, p) for p in priors]
    fig = plt.figure(figsize=(7, 5))
    plt.plot(log_odds, actual, label='actual DCF (the calibrated LLRs\' decisions)')
    plt.plot(log_odds, minimum, '--', label='minimum DCF (the best threshold)')
    plt.axhline(1.0, color='grey', linewidth=0.8, label='no system (always one answer)')
    plt.xlabel('prior log-odds  log(p_target / (1 - p_target))')
    plt.ylabel('normalised detection cost')
    plt.ylim(0, 1.2)
    plt.title(title)
    plt.grid(True)
    plt.legend()
    return save_figure(fig, path)
