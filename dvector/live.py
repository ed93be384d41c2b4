"""The live demo's steps (demo.py): enroll clips under a name, identify a clip among the enrolled
speakers, verify a claim, compare two clips, and map the enrolled voices.

Each step is one call that takes wav paths and an enrollment folder and returns what the page
shows; every decision goes through ``decide`` (one place, so the page follows the model's
threshold, or its calibration). Nothing is written unless a whole step succeeds: an enrollment
embeds every clip first and then replaces the set at once (dvector/enrollment.py).
"""
import os
from typing import NamedTuple, Optional

import numpy as np
import torch

from configure import SetupError
from dvector.enrollment import load_enroll_embeddings, save_enrollment_set
from dvector.recordings import REAL_MODEL_PATH, cached_model, embed_wavs, score_wavs
from dvector.scoring import cosine_scores
from dvector.threshold import choose_threshold

CLEAR_MARGIN = 0.15  # cosine units from the threshold: beyond it a decision is called clear
NEAR_MARGIN = 0.05   # within it, a close call (a little noise could turn it)


class Decision(NamedTuple):
    """A score against the model's threshold: the answer, how sure, and what it rests on."""
    accepted: bool
    score: float
    threshold: float
    basis: str       # the threshold and what it was measured on
    confidence: str  # the margin in words


class Identification(NamedTuple):
    """Every enrolled speaker with its score, best first, and the decision on the best one:
    ``speaker`` is None when it is not above the threshold ("none of them")."""
    ranking: list    # [(speaker, score)]
    speaker: Optional[str]
    decision: Decision


def confidence_words(score: float, threshold: float) -> str:
    """How far the score lies from the threshold, in words (the model is not calibrated: this
    is a margin in cosine units, not a probability)."""
    margin = score - threshold
    side = 'above' if margin > 0 else 'below'
    if abs(margin) >= CLEAR_MARGIN:
        words = 'clear'
    elif abs(margin) >= NEAR_MARGIN:
        words = 'fairly clear'
    else:
        words = 'close call: near the threshold, record a longer clip to be sure'
    return f'{words} ({abs(margin):.2f} {side} the threshold)'


def decide(score: float, log_dir: str = REAL_MODEL_PATH) -> Decision:
    """The model's decision on one cosine score: above its stored threshold is the same
    speaker."""
    _, checkpoint = cached_model(log_dir)
    threshold, basis = choose_threshold(0, checkpoint)
    return Decision(score > threshold, score, threshold, basis,
                    confidence_words(score, threshold))


def embed_clips(paths: list, log_dir: str = REAL_MODEL_PATH) -> torch.Tensor:
    """(n, E) d-vectors of wav clips; SetupError naming the clip for an unreadable file or too
    little speech."""
    paths = [p for p in paths if p]
    if not paths:
        raise SetupError('no clip given: record one with the microphone or upload a wav file')
    model, _ = cached_model(log_dir)
    return embed_wavs(model, paths, next(model.parameters()).device)  # (n, E)


def check_speaker_name(name: str) -> str:
    """The name stripped; SetupError unless it can be a file name (as enroll.py's --speaker)."""
    name = (name or '').strip()
    if not name:
        raise SetupError('no name given: type the speaker\'s name first')
    if any(ch in name for ch in '/\\\0') or name.startswith('.'):
        raise SetupError(f'name {name!r}: a speaker name is a file name: no / or \\, and not '
                         'starting with a dot')
    return name


def enrolled(embedding_dir: str, log_dir: str = REAL_MODEL_PATH) -> dict:
    """{speaker: (1, E)} enrolled in ``embedding_dir`` by this model ({} when none yet);
    SetupError for a set this model cannot use (another model's)."""
    if not os.path.isdir(embedding_dir) or \
            not any(f.endswith('.pth') for f in os.listdir(embedding_dir)):
        return {}
    return load_enroll_embeddings(embedding_dir, cached_model(log_dir)[1])


def enroll_clips(name: str, paths: list, embedding_dir: str, log_dir: str = REAL_MODEL_PATH,
                 replace: bool = False) -> list:
    """Enroll the clips as one speaker (the sum of their d-vectors, as enroll.py) into
    ``embedding_dir``, beside the speakers there; returns the enrolled speakers. A name already
    enrolled is refused unless ``replace``."""
    name = check_speaker_name(name)
    _, checkpoint = cached_model(log_dir)
    embeddings = enrolled(embedding_dir, log_dir)
    if name in embeddings and not replace:
        raise SetupError(f'{name} is already enrolled: choose another name, or tick "replace" '
                         'to enroll these clips in its place')
    embeddings[name] = embed_clips(paths, log_dir).sum(dim=0, keepdim=True)  # (1, E)
    save_enrollment_set(embeddings, embedding_dir, checkpoint)
    return sorted(embeddings)


def enrolled_matrix(embedding_dir: str, log_dir: str) -> tuple:
    """(speakers, (N, E) enrollments); SetupError when nobody is enrolled yet."""
    embeddings = enrolled(embedding_dir, log_dir)
    if not embeddings:
        raise SetupError('nobody is enrolled yet: enroll a speaker first (the Enroll tab)')
    speakers = sorted(embeddings)
    return speakers, torch.cat([embeddings[s] for s in speakers])  # (N, E)


def identify_clip(path: str, embedding_dir: str,
                  log_dir: str = REAL_MODEL_PATH) -> Identification:
    """Whose voice is the clip? All enrolled speakers ranked by cosine score; the best one
    if the model's decision accepts it, else None (open set: none of them)."""
    speakers, matrix = enrolled_matrix(embedding_dir, log_dir)
    scores = cosine_scores(embed_clips([path], log_dir), matrix)[0]  # (N,)
    ranking = sorted(zip(speakers, scores.tolist()), key=lambda pair: -pair[1])
    decision = decide(ranking[0][1], log_dir)
    return Identification(ranking, ranking[0][0] if decision.accepted else None, decision)


def verify_clip(claimed: str, path: str, embedding_dir: str,
                log_dir: str = REAL_MODEL_PATH) -> Decision:
    """Is the clip the claimed enrolled speaker? The model's decision on its cosine score."""
    speakers, matrix = enrolled_matrix(embedding_dir, log_dir)
    if not claimed:
        raise SetupError('no claimed speaker: choose one of the enrolled speakers')
    if claimed not in speakers:
        raise SetupError(f'{claimed} is not enrolled; enrolled: ' + ', '.join(speakers))
    enrollment = matrix[speakers.index(claimed)][None]  # (1, E)
    score = float(cosine_scores(embed_clips([path], log_dir), enrollment)[0, 0])
    return decide(score, log_dir)


def compare_clips(path_a: str, path_b: str, log_dir: str = REAL_MODEL_PATH) -> Decision:
    """Are two clips of the same speaker? score_wavs' score, decided by ``decide``."""
    if not path_a or not path_b:
        raise SetupError('give two clips to compare (record or upload both)')
    return decide(score_wavs(path_a, path_b, log_dir).score, log_dir)


class VoiceMap(NamedTuple):
    """The enrolled voices: their (N, N) cosine similarities, and a 2-D map (the first two
    principal components of the d-vectors) with the last clip, when given, placed among them."""
    speakers: list
    similarity: np.ndarray   # (N, N)
    points: np.ndarray       # (N, 2)
    clip_point: Optional[np.ndarray]  # (2,) or None


def principal_components(vectors: np.ndarray, n: int = 2) -> np.ndarray:
    """(M, n) coordinates of the (M, E) rows on their first ``n`` principal components (zeros
    beyond the rank)."""
    centred = vectors - vectors.mean(axis=0, keepdims=True)          # (M, E)
    left, singular, _ = np.linalg.svd(centred, full_matrices=False)  # (M, K), (K,)
    coords = left[:, :n] * singular[:n]                              # (M, <=n)
    return np.pad(coords, ((0, 0), (0, n - coords.shape[1])))


def voice_map(embedding_dir: str, clip: str = '', log_dir: str = REAL_MODEL_PATH) -> VoiceMap:
    """The map of the enrolled voices (at least two) and of ``clip`` (a wav) among them."""
    speakers, matrix = enrolled_matrix(embedding_dir, log_dir)  # (N, E)
    if len(speakers) < 2:
        raise SetupError(f'only {speakers[0]} is enrolled: enroll a second speaker to compare '
                         'voices')
    matrix = torch.nn.functional.normalize(matrix, dim=1)
    vectors = torch.cat([matrix, embed_clips([clip], log_dir)]) if clip else matrix  # (M, E)
    coords = principal_components(vectors.numpy().astype(np.float64))
    similarity = cosine_scores(matrix, matrix).numpy()  # (N, N)
    return VoiceMap(speakers, similarity, coords[:len(speakers)],
                    coords[len(speakers)] if clip else None)


def plot_voice_map(found: VoiceMap, path: str) -> str:
    """The 2-D map as a PNG: a point per enrolled speaker, the last clip as a star."""
    from dvector.plots import plt, save_figure
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.scatter(found.points[:, 0], found.points[:, 1], s=60, color='tab:blue')
    for name, (x, y) in zip(found.speakers, found.points):
        ax.annotate(name, (x, y), textcoords='offset points', xytext=(6, 4), fontsize=9)
    if found.clip_point is not None:
        ax.scatter(*found.clip_point, s=200, marker='*', color='tab:red', label='last clip')
        ax.legend(loc='best', fontsize=8)
    ax.set_xlabel('principal component 1')
    ax.set_ylabel('principal component 2')
    ax.set_title('Enrolled d-vectors (PCA)')
    ax.grid(True, alpha=0.3)
    return save_figure(fig, path)
