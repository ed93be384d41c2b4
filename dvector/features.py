"""The tutorial's feature recipe: log mel filterbank energies, mean-normalised per utterance.

Verified against the tutorial's shipped test pickles (tests/test_evaluate.py): float32 audio
in [-1, 1] at 16 kHz -> python_speech_features.fbank (40 bands, 25 ms window, 10 ms hop) ->
20*log10(max(fbank, 1e-5)) -> subtract each band's mean over the utterance.

One recipe, two functions of the same settings (configure.py's; its FILTER_BANK is their
``n_bands``, the project's name for the band count): ``logfbank_features`` is the reference,
the recipe written with the library's own calls as the tutorial made its features;
``fast_logfbank`` is the path the project takes everywhere (tools/extract_features.py,
recordings and the demo DB), the same operations in the same precision without the library's
extra work: the same numbers bit for bit (tests/test_extract_features.py compares them for
every switch), about 3x faster. The reference is kept only as that proof and as the
benchmark's baseline (tools/benchmarks/bench_extract.py).

The floor of 1e-5 (-100 dB) is taken before the per-band mean, so the features, and the
d-vectors, depend on the recording's level: quiet bands sink into the floor. A recording is
therefore set to the tutorial DB's speech level (``at_db_level``) before its features are made.
"""
import functools
import math
import os

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from python_speech_features import delta, fbank, get_filterbanks
from python_speech_features.sigproc import round_half_up

import configure as c
from configure import SetupError


def logfbank_features(audio: np.ndarray, sample_rate: int = c.SAMPLE_RATE,
                      n_bands: int = c.FILTER_BANK, use_logscale: bool = c.USE_LOGSCALE,
                      use_delta: bool = c.USE_DELTA, use_scale: bool = c.USE_SCALE) -> np.ndarray:
    """The reference recipe: features of one utterance, (n_frames, n_bands), or
    (n_frames, 3 * n_bands) with deltas."""
    filter_banks, _energies = fbank(audio, samplerate=sample_rate, nfilt=n_bands,
                                    winlen=c.WINDOW_SECONDS, winstep=c.HOP_SECONDS)
    if use_logscale:
        filter_banks = 20 * np.log10(np.maximum(filter_banks, 1e-5))
    if use_delta:
        first = delta(filter_banks, 2)
        second = delta(first, 2)
        filter_banks = np.concatenate([filter_banks, first, second], axis=1)
    return normalize_frames(filter_banks, use_scale)


def normalize_frames(feat: np.ndarray, use_scale: bool = False) -> np.ndarray:
    """Subtract each band's mean over frames; optionally divide by its std (+2e-12)."""
    feat = feat - np.mean(feat, axis=0)
    if use_scale:
        feat = feat / (np.std(feat, axis=0) + 2e-12)
    return feat


NFFT, PREEMPH = 512, 0.97  # python_speech_features.fbank's defaults


@functools.lru_cache(maxsize=8)
def mel_filterbank(n_bands: int, sample_rate: int) -> np.ndarray:
    """The library's (n_bands, 257) filterbank, built once per process (a Python double
    loop)."""
    return get_filterbanks(n_bands, NFFT, sample_rate, 0, sample_rate / 2)


def window_length(sample_rate: int) -> int:
    """Samples in one 25 ms analysis window, rounded as the library rounds it."""
    return int(round_half_up(c.WINDOW_SECONDS * sample_rate))


def frame_signal(signal: np.ndarray, frame_len: int, frame_step: int) -> np.ndarray:
    """sigproc.framesig without its index arrays and window multiply: a strided float64 view."""
    n_frames = 1
    if len(signal) > frame_len:  # the same float expression as the library, for the same count
        n_frames = 1 + int(math.ceil((1.0 * len(signal) - frame_len) / frame_step))
    pad_len = int((n_frames - 1) * frame_step + frame_len)
    padded = np.concatenate((signal, np.zeros((pad_len - len(signal),))))  # float64, as framesig
    return sliding_window_view(padded, frame_len)[::frame_step]


def fast_logfbank(audio: np.ndarray, sample_rate: int = c.SAMPLE_RATE,
                  n_bands: int = c.FILTER_BANK, use_logscale: bool = c.USE_LOGSCALE,
                  use_delta: bool = c.USE_DELTA, use_scale: bool = c.USE_SCALE) -> np.ndarray:
    """The recipe as the project computes it: logfbank_features, bit for bit, ~3x faster
    (tests compare them exactly).

    Same operations in the same precision as python_speech_features.fbank; it skips only what
    the recipe throws away or what cannot change a bit: the frame energies, multiplying by a
    window of ones, rebuilding the filterbank, and fancy-index framing.
    """
    signal = np.append(audio[0], audio[1:] - PREEMPH * audio[:-1])  # sigproc.preemphasis
    frames = frame_signal(signal, window_length(sample_rate),
                          int(round_half_up(c.HOP_SECONDS * sample_rate)))
    power = np.absolute(np.fft.rfft(frames, NFFT))  # sigproc.powspec: 1/N * |X|^2
    np.square(power, out=power)
    power *= 1.0 / NFFT
    feat = np.dot(power, mel_filterbank(n_bands, sample_rate).T)  # (frames, n_bands)
    feat[feat == 0] = np.finfo(float).eps
    if use_logscale:
        feat = 20 * np.log10(np.maximum(feat, 1e-5))
    if use_delta:
        first = delta(feat, 2)
        feat = np.concatenate([feat, first, delta(first, 2)], axis=1)
    return normalize_frames(feat, use_scale)


# The speech level of the tutorial DB's recordings: the power of the louder half of their 10 ms
# frames is -44.8 to -38.0 dB of full scale in its 20 test recordings (median -41.6), with or
# without the speech detector. The same recordings 20 dB louder scored 0.01 on average against
# their own enrollments with the real-speech model (0.89 at the DB's level): docs/RESULTS.md.
SPEECH_LEVEL_DB = -42.0
LEVEL_FRAME = 160  # samples in a 10 ms frame at 16 kHz


def speech_level_db(samples: np.ndarray) -> float:
    """The level of a recording in dB of full scale: the mean power of the louder half of its
    10 ms frames (pauses and silence left out); -inf for silence."""
    n_frames = max(1, len(samples) // LEVEL_FRAME)
    frames = np.resize(samples.astype(np.float64), n_frames * LEVEL_FRAME)
    power = np.mean(frames.reshape(n_frames, LEVEL_FRAME) ** 2, axis=1)  # (n_frames,)
    loud = power[power >= np.median(power)].mean()
    return float(10 * np.log10(loud)) if loud > 0 else float('-inf')


def at_db_level(samples: np.ndarray, level_db: float = SPEECH_LEVEL_DB) -> np.ndarray:
    """``samples`` scaled so that their speech_level_db is ``level_db`` (silence unchanged)."""
    level = speech_level_db(samples)
    if not np.isfinite(level):
        return samples
    return (samples * 10 ** ((level_db - level) / 20)).astype(samples.dtype)


def recording_features(samples: np.ndarray, level_db: float = SPEECH_LEVEL_DB) -> np.ndarray:
    """(frames, bands) float32 features of a recording's 16 kHz samples (its speech, or all of
    it): set to ``level_db``, the speech level of the model's training recordings (the DB's by
    default; a model's own: model_level_db), then the tutorial's recipe."""
    return fast_logfbank(at_db_level(samples, level_db)).astype(np.float32)


# A feature tree made from recordings at another level than the tutorial DB's says so in this
# file beside its train/ and test/ folders (tools/make_demo_db.py writes it): train.py stores
# the level in the checkpoint, and recordings given to that model are set to it.
LEVEL_FILE = 'speech_level_db.txt'
LEVEL_KEY = 'recording_level_db'  # the checkpoint's key for it


def tree_level_db(feat_dir: str) -> float:
    """The speech level (dB of full scale) of the recordings ``feat_dir``'s features were made
    from: LEVEL_FILE in the folder above it (above the folder it links to, for a link), else
    the tutorial DB's (SPEECH_LEVEL_DB). A LEVEL_FILE that is there but not a readable file of
    one number, or two that disagree: SetupError."""
    levels = {path: read_level_file(path) for path in level_file_paths(feat_dir)}
    if len(set(levels.values())) > 1:
        raise SetupError(f'{feat_dir}: its level files disagree ('
                         + ', '.join(f'{path}: {v:g}' for path, v in levels.items()) + ')')
    return next(iter(levels.values()), SPEECH_LEVEL_DB)


def level_file_paths(feat_dir: str) -> list:
    """The LEVEL_FILEs that speak for ``feat_dir``: beside it, and beside the folder it links
    to (a dangling link or a folder of that name counts: it is there, to be refused)."""
    parents = dict.fromkeys(os.path.dirname(path(feat_dir)) for path in (os.path.abspath,
                                                                            os.path.realpath))
    return [path for path in (os.path.join(parent, LEVEL_FILE) for parent in parents)
            if os.path.lexists(path)]


def read_level_file(path: str) -> float:
    """The number on a LEVEL_FILE's first line (the lines after it are free for notes);
    SetupError quoting what it holds otherwise."""
    text, found = '', None
    if os.path.isdir(path):
        found = 'a folder'
    elif not os.path.isfile(path):
        found = 'a link to nothing'
    try:
        with open(path, encoding='utf-8-sig') as f:  # an editor's byte-order mark is fine
            text = f.read(100).split('\n')[0].strip() if found is None else ''
        level = float(text)
    except (ValueError, UnicodeDecodeError, OSError):
        level = float('nan')
    if not -100 <= level <= 0:
        raise SetupError(f'{path}: expected the speech level in dB of full scale (a number from '
                         f'-100 to 0, e.g. -22.5) on its first line, as tools/make_demo_db.py '
                         f'writes it; found {found or repr(text[:40])}')
    return level


def model_level_db(checkpoint: dict) -> float:
    """The level recordings are set to for this model: its training recordings' (LEVEL_KEY,
    stored by train.py), the tutorial DB's for a checkpoint without it."""
    level = checkpoint.get(LEVEL_KEY, SPEECH_LEVEL_DB)
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not -100 <= level <= 0:
        raise SetupError(f'the checkpoint\'s {LEVEL_KEY} is {level!r}: not a speech level in dB '
                         'of full scale (-100 to 0)')
    return float(level)


def feature_settings() -> dict:
    """The recipe settings in force, stored in checkpoints to catch mismatched features. The
    keys are configure.py's names (``filter_bank`` is FILTER_BANK, the functions' n_bands): the
    stored checkpoints have them, and recordings.check_extraction_settings names them as
    configure.py's."""
    return {'sample_rate': c.SAMPLE_RATE, 'filter_bank': c.FILTER_BANK,
            'use_logscale': c.USE_LOGSCALE, 'use_delta': c.USE_DELTA, 'use_scale': c.USE_SCALE,
            'window_seconds': c.WINDOW_SECONDS, 'hop_seconds': c.HOP_SECONDS}
