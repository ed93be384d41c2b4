"""Energy-based voice activity detection for recordings: keep the speech, drop the silence.

Recordings made for enrollment or testing start and end with silence and have pauses; the
model was trained on read speech that is mostly voice, and the tutorial's features drop a fixed
0.5 s at each end instead. ``keep_speech`` drops leading and trailing silence and shortens every
pause to at most ``2 * PAD_SECONDS``.

Why energy, not a package: a 10 ms frame's energy against the recording's own loudest speech is
enough for recordings made to be recognised (one speaker, close to the microphone), works at any
sample rate, needs nothing beyond numpy, and a student can read it in one screen. WebRTC's VAD
(webrtcvad) is a C extension whose last release is from 2017 and which takes 8-48 kHz 16-bit
audio only; Silero's needs a neural network runtime.
"""
import numpy as np

from configure import SetupError

FRAME_SECONDS = 0.01     # energy frames of 10 ms (the features' hop)
RANGE_DB = 40.0          # speech: within this many dB of the loudest speech ...
NOISE_SHARE = 0.3        # ... and this share of the way from the noise floor up to it
PAD_SECONDS = 0.1        # speech keeps this much audio on each side (soft onsets and endings)
FLOOR_DB = -100.0        # digital silence counts as this level (log of zero)
MIN_SPEECH_SECONDS = 0.5  # less speech than this cannot be recognised: an error


def frame_length(rate: int) -> int:
    """Samples in one energy frame."""
    return max(1, int(round(FRAME_SECONDS * rate)))


def frame_energies(audio: np.ndarray, rate: int) -> np.ndarray:
    """Energy in dB of each consecutive ``FRAME_SECONDS`` frame: (n_frames,)."""
    hop = frame_length(rate)
    n_frames = max(1, len(audio) // hop)
    frames = np.resize(audio, n_frames * hop).reshape(n_frames, hop)  # (n_frames, hop)
    power = np.mean(frames.astype(np.float64) ** 2, axis=1)
    return np.maximum(10 * np.log10(power + 1e-20), FLOOR_DB)


def speech_mask(energies: np.ndarray) -> np.ndarray:
    """True for the frames that are speech, padded by PAD_SECONDS on each side."""
    loud = np.percentile(energies, 99)    # the loudest speech, not one click
    floor = np.percentile(energies, 10)   # the noise floor (or the silence)
    threshold = max(loud - RANGE_DB, floor + NOISE_SHARE * (loud - floor))
    speech = energies > threshold
    pad = int(round(PAD_SECONDS / FRAME_SECONDS))
    # a frame is kept when a speech frame lies within `pad` frames of it
    kept = np.convolve(speech.astype(np.int32), np.ones(2 * pad + 1, dtype=np.int32), 'same')
    return kept > 0


def keep_speech(audio: np.ndarray, rate: int, name: str = 'the recording') -> np.ndarray:
    """The speech of ``audio`` (mono samples at ``rate`` Hz), its silences cut out; SetupError
    naming ``name`` when under MIN_SPEECH_SECONDS of speech is left."""
    hop = frame_length(rate)
    mask = speech_mask(frame_energies(audio, rate))  # digital silence: no frame is speech
    samples = np.repeat(mask, hop)[:len(audio)]
    samples = np.pad(samples, (0, len(audio) - len(samples)), mode='edge')
    speech = audio[samples]
    if len(speech) < MIN_SPEECH_SECONDS * rate:
        raise SetupError(f'{name}: only {len(speech) / rate:.2f} s of speech found (of '
                         f'{len(audio) / rate:.2f} s); at least {MIN_SPEECH_SECONDS:g} s is '
                         'needed: record again closer to the microphone, or set --vad false')
    return speech
