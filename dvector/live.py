"""The live demo's steps (demo.py): enroll clips under a name, identify a clip among the enrolled
speakers, verify a claim, compare two clips, and map the enrolled voices.

Each step is one call that takes wav paths and an enrollment folder and returns what the page
shows. The decisions are the project's own: dvector/calibration.py's ``decide`` and
``identify`` (a calibrated model's LLR at the default operating point, else the model's stored
threshold) and ``score_wavs``; each clip's quality warnings come from dvector/quality.py.
Nothing is written unless a whole step succeeds: an enrollment checks and embeds every clip
first, then saves the set at once (dvector/enrollment.py).
"""
import os
from typing import NamedTuple, Optional

import numpy as np
import torch

from configure import SetupError
from dvector import calibration, cli
from dvector.enrollment import enrolled_seconds, load_enroll_embeddings, save_enrollment_set
from dvector.recordings import (
    NAME_RULE,
    REAL_MODEL_PATH,
    cached_model,
    check_enrollment,
    embed_wavs_with_seconds,
    score_wavs,
    speaker_name_problem,
    wav_quality,
)
from dvector.scoring import cosine_scores

CLEAR_MARGIN = 0.15  # without calibration, cosine units from the threshold of a clear decision
NEAR_MARGIN = 0.05   # within it, a close call (a little noise could turn it)


class Verdict(NamedTuple):
    """A decision as the page shows it: the project's Decision (score, accept, threshold, llr,
    meaning, basis), how sure it is in words, and the clips' quality warnings."""
    decision: calibration.Decision
    confidence: str
    warnings: tuple
    speech_seconds: float  # of the clip decided on


class Identification(NamedTuple):
    """Every enrolled speaker with its score and LLR (None without calibration), best first,
    and the verdict on the best one: ``speaker`` is None when it is rejected ("none of them")."""
    ranking: list    # [(speaker, score, llr)]
    speaker: Optional[str]
    verdict: Optional[Verdict]  # None: a model with neither calibration nor threshold


def confidence_words(decision: calibration.Decision) -> str:
    """How sure the decision is: the LLR in words for a calibrated model; else how far the
    score lies from the threshold (a margin in cosine units, not a probability)."""
    if decision.llr is not None:
        return f'{decision.meaning} (LLR {decision.llr:+.2f})'
    margin = decision.score - decision.threshold
    side = 'above' if margin > 0 else 'below'
    if abs(margin) >= CLEAR_MARGIN:
        words = 'clear'
    elif abs(margin) >= NEAR_MARGIN:
        words = 'fairly clear'
    else:
        words = 'close call: near the threshold, record a longer clip to be sure'
    return f'{words} ({abs(margin):.2f} {side} the threshold; the model is not calibrated)'


def verdict(decision: calibration.Decision, clips: list) -> Verdict:
    """The page's view of a decision on the last of ``clips`` (warnings of all of them)."""
    qualities = [wav_quality(clip) for clip in clips]
    return Verdict(decision, confidence_words(decision),
                   tuple(line for q in qualities for line in q.warnings),
                   qualities[-1].speech_seconds)


def embed_clips(paths: list, log_dir: str = REAL_MODEL_PATH) -> tuple:
    """((n, E) d-vectors, [seconds of speech]) of wav clips; SetupError naming the clip for an
    unreadable file or one without enough speech."""
    paths = [p for p in paths if p]
    if not paths:
        raise SetupError('no clip given: record one with the microphone or upload a wav file')
    model, _ = cached_model(log_dir)
    return embed_wavs_with_seconds(model, paths, next(model.parameters()).device)


def check_speaker_name(name: str) -> str:
    """The name stripped; SetupError unless it can be a file name (as enroll.py's --speaker)."""
    name = (name or '').strip()
    if not name:
        raise SetupError('no name given: type the speaker\'s name first')
    if speaker_name_problem(name):  # the rule of enroll.py's --speaker
        raise SetupError(f'name {cli.brief(name)}: {NAME_RULE}: this one '
                         f'{speaker_name_problem(name)}')
    return name


def enrolled(embedding_dir: str, log_dir: str = REAL_MODEL_PATH) -> dict:
    """{speaker: (1, E)} enrolled in ``embedding_dir`` by this model ({} when none yet);
    SetupError for a set this model cannot use (another model's)."""
    if not os.path.isdir(embedding_dir) or \
            not any(f.endswith('.pth') for f in os.listdir(embedding_dir)):
        return {}
    return load_enroll_embeddings(embedding_dir, cached_model(log_dir)[1])


def enroll_clips(name: str, paths: list, embedding_dir: str, log_dir: str = REAL_MODEL_PATH,
                 replace: bool = False) -> tuple:
    """Enroll the clips as one speaker (the sum of their d-vectors, as enroll.py) into
    ``embedding_dir``, beside the speakers there: (the enrolled speakers, the clips' quality
    warnings). A name already enrolled is refused unless ``replace``; so is a clip with too
    little speech to enroll (recordings.check_enrollment)."""
    name = check_speaker_name(name)
    paths = [p for p in paths if p]
    if name in enrolled(embedding_dir, log_dir) and not replace:
        raise SetupError(f'{name} is already enrolled: choose another name, or tick "replace" '
                         'to enroll these clips in its place')
    check_enrollment(paths)  # enough speech in every clip (found once, kept for embedding)
    vectors, seconds = embed_clips(paths, log_dir)  # (n, E)
    saved = save_enrollment_set({name: vectors.sum(dim=0, keepdim=True)}, embedding_dir,
                                cached_model(log_dir)[1], {name: sum(seconds)})
    return sorted(saved), tuple(line for p in paths for line in wav_quality(p).warnings)


def enrolled_matrix(embedding_dir: str, log_dir: str) -> tuple:
    """(speakers, (N, E) enrollments, {speaker: seconds of speech}); SetupError when nobody
    is enrolled yet."""
    embeddings = enrolled(embedding_dir, log_dir)
    if not embeddings:
        raise SetupError('nobody is enrolled yet: enroll a speaker first (the Enroll tab)')
    speakers = sorted(embeddings)
    return speakers, torch.cat([embeddings[s] for s in speakers]), \
        enrolled_seconds(embedding_dir)  # (N, E)


def identify_clip(path: str, embedding_dir: str,
                  log_dir: str = REAL_MODEL_PATH) -> Identification:
    """Whose voice is the clip? calibration.identify's answer (open set: the best speaker, or
    none of them), with every enrolled speaker's score and LLR, best first."""
    speakers, matrix, seconds = enrolled_matrix(embedding_dir, log_dir)
    vectors, (test_seconds,) = embed_clips([path], log_dir)
    scores = cosine_scores(vectors, matrix)[0].tolist()  # (N,)
    checkpoint = cached_model(log_dir)[1]
    best, decision = calibration.identify(scores, speakers, checkpoint, (test_seconds, seconds))
    llrs = [calibration.decide(score, checkpoint, (seconds.get(s), test_seconds)).llr
            for s, score in zip(speakers, scores)]
    ranking = sorted(zip(speakers, scores, llrs),
                     key=lambda row: -(row[2] if row[2] is not None else row[1]))
    if decision is None:  # closed set: the model has no threshold to say "none of them" by
        return Identification(ranking, best, None)
    return Identification(ranking, best if decision.accept else None,
                          verdict(decision, [path]))


def verify_clip(claimed: str, path: str, embedding_dir: str,
                log_dir: str = REAL_MODEL_PATH) -> Verdict:
    """Is the clip the claimed enrolled speaker? calibration.decide on its cosine score and
    both sides' seconds of speech."""
    speakers, matrix, seconds = enrolled_matrix(embedding_dir, log_dir)
    if not claimed:
        raise SetupError('no claimed speaker: choose one of the enrolled speakers')
    if claimed not in speakers:
        raise SetupError(f'{claimed} is not enrolled; enrolled: ' + ', '.join(speakers))
    vectors, (test_seconds,) = embed_clips([path], log_dir)
    enrollment = matrix[speakers.index(claimed)][None]  # (1, E)
    score = float(cosine_scores(vectors, enrollment)[0, 0])
    return verdict(calibration.decide(score, cached_model(log_dir)[1],
                                      (seconds.get(claimed), test_seconds)), [path])


def compare_clips(path_a: str, path_b: str, log_dir: str = REAL_MODEL_PATH) -> Verdict:
    """Are two clips of the same speaker? score_wavs' decision, with both clips' warnings."""
    if not path_a or not path_b:
        raise SetupError('give two clips to compare (record or upload both)')
    found = score_wavs(path_a, path_b, log_dir)
    decision = calibration.Decision(found.score, found.same_speaker, found.threshold,
                                    found.llr, found.meaning, found.decided_on)
    return verdict(decision, [path_a, path_b])


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
    speakers, matrix, _ = enrolled_matrix(embedding_dir, log_dir)  # (N, E)
    if len(speakers) < 2:
        raise SetupError(f'only {speakers[0]} is enrolled: enroll a second speaker to compare '
                         'voices')
    matrix = torch.nn.functional.normalize(matrix, dim=1)
    vectors = torch.cat([matrix, embed_clips([clip], log_dir)[0]]) if clip else matrix  # (M, E)
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
