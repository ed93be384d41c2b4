"""Training-crop augmentation: SpecAugment-style masking, and speed perturbation as new speakers.

SpecAugment (Park et al. 2019, without time warping): each crop of a (B, 1, bands, frames)
batch gets one band of ``freq_mask`` or fewer consecutive filterbank bands and one stretch of
``time_mask`` or fewer consecutive frames set to 0 (the features are mean-normalised per band,
so 0 is the band's mean). Widths are drawn uniformly from 0..width per crop, positions uniformly.

Band limiting (below): a crop as if recorded through a telephone or at 8 kHz.

Speed perturbation (below): a crop as if the utterance were played faster or slower.

Both are used on training crops only, never on validation or test utterances.
"""
import functools

import numpy as np
import torch
from python_speech_features.base import hz2mel, mel2hz

import configure as c


def mask_along(batch: torch.Tensor, width: int, dim: int, generator=None) -> torch.Tensor:
    """Boolean (B, 1, 1|bands, 1|frames) mask of one random stretch of <= width along ``dim``."""
    size, n = batch.shape[dim], batch.shape[0]
    widths = torch.randint(0, min(width, size) + 1, (n,), generator=generator)
    starts = (torch.rand(n, generator=generator) * (size - widths + 1)).long()
    pos = torch.arange(size)
    mask = (pos >= starts[:, None]) & (pos < (starts + widths)[:, None])  # (B, size)
    shape = [n, 1, 1, 1]
    shape[dim] = size
    return mask.reshape(shape).to(batch.device)


def spec_augment(batch: torch.Tensor, freq_mask: int = 8, time_mask: int = 20,
                 generator=None) -> torch.Tensor:
    """A masked copy of a (B, 1, bands, frames) batch: one frequency and one time mask per crop."""
    masked = batch.clone()
    if freq_mask > 0:
        masked.masked_fill_(mask_along(batch, freq_mask, 2, generator), 0.0)
    if time_mask > 0:
        masked.masked_fill_(mask_along(batch, time_mask, 3, generator), 0.0)
    return masked


# ---- band limiting: telephone and 8 kHz recordings ----------------------------------------
# A recording made at 8 kHz (or through a telephone) has no energy above 3.4-4 kHz (bands
# centred above 4.3 kHz are exactly flat in the tutorial's test recordings made 8 kHz 8-bit):
# after the per-band mean normalisation its upper bands are exactly 0 (constant), while the
# model only ever saw full-band speech and scores such a recording far from its speaker.
# Training crops cut the same way teach it that the lower bands carry the voice.

def band_centres_hz(n_bands: int, sample_rate: int) -> np.ndarray:
    """(bands,) centre frequency in Hz of each mel filterbank band."""
    mels = np.linspace(hz2mel(0), hz2mel(sample_rate / 2), n_bands + 2)[1:-1]
    return mel2hz(mels)


def band_limit(batch: torch.Tensor, probability: float, low_hz: float = 3400.0,
               high_hz: float = 4400.0, sample_rate: int = c.SAMPLE_RATE,
               generator=None) -> torch.Tensor:
    """A copy of a (B, 1, bands, frames) batch in which each crop, with ``probability``, has its
    bands centred above a cut-off drawn uniformly from [low_hz, high_hz] set to 0."""
    n, n_bands = batch.shape[0], batch.shape[2]
    centres = torch.as_tensor(band_centres_hz(n_bands, sample_rate), dtype=torch.float32)
    cutoffs = low_hz + (high_hz - low_hz) * torch.rand(n, generator=generator)  # (B,)
    chosen = torch.rand(n, generator=generator) < probability                    # (B,)
    mask = (centres[None, :] > cutoffs[:, None]) & chosen[:, None]               # (B, bands)
    return batch.masked_fill(mask[:, None, :, None].to(batch.device), 0.0)


# ---- speed perturbation as new speakers (Yamamoto et al., Interspeech 2019) ----------------
# Playing speech at speed r shortens it by r and scales every frequency by r: formants move
# as if from a different vocal tract, so a perturbed speaker is trained as a new class. The
# corpus holds features, not audio, so it is done on the log mel bands: frames are resampled
# in time and bands are read at the mel position of f / r.

def interpolation_matrix(positions: np.ndarray, size: int) -> np.ndarray:
    """(len(positions), size) linear interpolation weights: row i reads an axis of ``size``
    at the fractional position positions[i] (clamped to the axis)."""
    positions = np.clip(positions, 0, size - 1)
    low = np.floor(positions).astype(int)
    high = np.minimum(low + 1, size - 1)
    rows = np.arange(len(positions))
    matrix = np.zeros((len(positions), size), dtype=np.float32)
    np.add.at(matrix, (rows, low), 1.0 - (positions - low))
    np.add.at(matrix, (rows, high), positions - low)
    return matrix


@functools.lru_cache(maxsize=None)
def band_warp_matrix(factor: float, n_bands: int, sample_rate: int) -> np.ndarray:
    """(bands, bands) linear interpolation: output band centred at f reads the input at f/r."""
    mels = hz2mel(band_centres_hz(n_bands, sample_rate))
    return interpolation_matrix(np.interp(hz2mel(mel2hz(mels) / factor), mels,
                                          np.arange(n_bands)), n_bands)


@functools.lru_cache(maxsize=None)
def time_stretch_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) linear interpolation spreading n_out frames evenly over n_in frames."""
    return interpolation_matrix(np.linspace(0, n_in - 1, n_out), n_in)


def speed_perturb(crop: np.ndarray, factor: float, n_frames: int,
                  sample_rate: int = c.SAMPLE_RATE) -> np.ndarray:
    """(frames, bands) crop of about n_frames * factor frames -> (n_frames, bands) at speed r."""
    resampled = time_stretch_matrix(len(crop), n_frames) @ crop           # (n_frames, bands)
    return resampled @ band_warp_matrix(factor, crop.shape[1], sample_rate).T


if __name__ == '__main__':
    out = spec_augment(torch.ones(2, 1, 40, 100), 8, 20)
    print(tuple(out.shape), (out == 0).float().mean().item())
    limited = band_limit(torch.ones(4, 1, 40, 100), 1.0)
    print(tuple(limited.shape), (limited[:, 0, :, 0] == 0).sum(1).tolist())
    warped = speed_perturb(np.ones((110, 40), dtype=np.float32), 1.1, 100, 16000)
    print(warped.shape, float(warped.mean()))
