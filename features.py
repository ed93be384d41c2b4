"""The tutorial's feature recipe: log mel filterbank energies, mean-normalised per utterance.

Verified against the tutorial's shipped test pickles (SPEC.md section 3): float32 audio in
[-1, 1] at 16 kHz -> python_speech_features.fbank (40 bands, 25 ms window, 10 ms hop) ->
20*log10(max(fbank, 1e-5)) -> subtract each band's mean over the utterance.
"""
import numpy as np
from python_speech_features import delta, fbank

import configure as c

WINDOW_SECONDS = 0.025


def logfbank_features(audio: np.ndarray, sample_rate: int = c.SAMPLE_RATE,
                      nfilt: int = c.FILTER_BANK, use_logscale: bool = c.USE_LOGSCALE,
                      use_delta: bool = c.USE_DELTA, use_scale: bool = c.USE_SCALE) -> np.ndarray:
    """Features of one utterance: (n_frames, nfilt), or (n_frames, 3*nfilt) with deltas."""
    filter_banks, _energies = fbank(audio, samplerate=sample_rate, nfilt=nfilt,
                                    winlen=WINDOW_SECONDS)
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


def feature_settings() -> dict:
    """The recipe settings in force, stored in checkpoints to catch mismatched features."""
    return {'sample_rate': c.SAMPLE_RATE, 'filter_bank': c.FILTER_BANK,
            'use_logscale': c.USE_LOGSCALE, 'use_delta': c.USE_DELTA, 'use_scale': c.USE_SCALE}


def feature_dim(settings: dict = None) -> int:
    settings = settings or feature_settings()
    return settings['filter_bank'] * (3 if settings['use_delta'] else 1)
