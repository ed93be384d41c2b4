"""Energy-based voice activity detection (dvector/vad.py)."""
import numpy as np
import pytest

from configure import SetupError
from dvector.vad import MIN_SPEECH_SECONDS, PAD_SECONDS, frame_energies, keep_speech

RATE = 16000


def burst(seconds: float, rng, level: float = 0.3) -> np.ndarray:
    """Speech-like noise: a random signal at a loud level."""
    return (level * rng.standard_normal(int(seconds * RATE))).astype(np.float32)


def silence(seconds: float, rng, level: float = 0.0) -> np.ndarray:
    return (level * rng.standard_normal(int(seconds * RATE))).astype(np.float32)


def test_leading_trailing_silence_and_long_pauses_are_cut():
    rng = np.random.default_rng(0)
    audio = np.concatenate([silence(1.0, rng), burst(1.0, rng), silence(2.0, rng),
                            burst(1.5, rng), silence(1.0, rng)])
    speech = keep_speech(audio, RATE)
    # the 2.5 s of speech, plus at most PAD_SECONDS of audio around each of its two stretches
    assert 2.5 <= len(speech) / RATE <= 2.5 + 4 * PAD_SECONDS + 0.02
    assert np.abs(speech).mean() > 0.2  # what is left is the loud part


def test_silence_under_noise_is_cut_at_a_noise_floor():
    rng = np.random.default_rng(1)
    noise = 0.01  # 30 dB under the speech
    audio = np.concatenate([silence(1.0, rng, noise), burst(2.0, rng), silence(1.0, rng, noise)])
    assert 2.0 <= len(keep_speech(audio, RATE)) / RATE <= 2.0 + 2 * PAD_SECONDS + 0.02


def test_short_pauses_are_kept():
    rng = np.random.default_rng(2)
    audio = np.concatenate([burst(1.0, rng), silence(0.1, rng), burst(1.0, rng)])
    assert len(keep_speech(audio, RATE)) == len(audio)


def test_too_little_speech_is_one_clear_error_naming_the_file():
    rng = np.random.default_rng(3)
    audio = np.concatenate([silence(2.0, rng), burst(0.2, rng), silence(2.0, rng)])
    with pytest.raises(SetupError, match=r'me\.wav: only 0\.\d\d s of speech found .* '
                                         r'--vad false'):
        keep_speech(audio, RATE, 'me.wav')
    with pytest.raises(SetupError, match='only 0.00 s of speech'):
        keep_speech(np.zeros(RATE * 3, dtype=np.float32), RATE, 'zeros.wav')
    assert MIN_SPEECH_SECONDS == 0.5


def test_frame_energies_are_decibels_of_10ms_frames():
    audio = np.concatenate([np.full(160, 0.1), np.zeros(160)]).astype(np.float32)
    energies = frame_energies(audio, RATE)
    assert energies.shape == (2,)
    assert energies[0] == pytest.approx(-20.0, abs=1e-3) and energies[1] == -100.0
