"""Voice activity detection for recordings: keep the speech, drop everything else.

Recordings made for enrollment or testing start and end with silence and have pauses; the
model was trained on read speech that is mostly voice, and the tutorial's features drop a fixed
0.5 s at each end instead. ``keep_speech`` keeps the stretches that Silero VAD (the
``silero-vad`` package, a small neural network shipped inside its wheel) calls speech, each
with PAD_SECONDS of audio around it, so that every pause is at most ``2 * PAD_SECONDS``.

Why Silero, not the energy rule this module had before nor WebRTC's VAD: on a labelled set of
speech, noise, tones, music and silence (tools/benchmarks/vad_compare.py, docs/RESULTS.md
section 10) the energy rule kept most of the noise, tone and music files as speech (it judges
each file against its own loudest part) and WebRTC's kept tones and music; Silero kept none.

Silero runs on the CPU through onnxruntime, in a session of one thread of its own: it never
changes torch's thread count (importing ``silero_vad`` sets torch to one thread, so the count is
restored around the import), and each thread gets its own model because the model holds state.
"""
import os
import sys
import threading
import warnings

import numpy as np
import torch

from configure import SetupError

DETECTOR_RATE = 16000     # Silero's rate (it also takes 8 kHz; other rates are resampled)
WINDOW = 512              # samples per speech probability at 16 kHz (32 ms)
SPEECH_THRESHOLD = 0.5    # Silero's default: a window above this probability is speech
PAD_SECONDS = 0.1         # speech keeps this much audio on each side (soft onsets and endings)
MIN_SPEECH_MS = 250       # shorter bursts are not speech (Silero's default: clicks, coughs)
MIN_SILENCE_MS = 100      # a pause shorter than this does not end a stretch of speech
MIN_SPEECH_SECONDS = 0.5  # less speech than this cannot be recognised: an error
# Enrolling needs more: decisions on shorter enrollments are unreliable (the EER per length of
# speech, docs/RESULTS.md section 10, tools/benchmarks/speech_length.py); a test this short is
# still scored, with a warning (dvector/quality.py).
MIN_ENROLL_SECONDS = 3.0
SHORT_TEST_SECONDS = 2.0

_models = threading.local()  # one Silero model per thread: it keeps state between windows


def silero():
    """The ``silero_vad`` package, imported with torch's thread count kept as it was."""
    if 'silero_vad' in sys.modules:  # imported before (the import waits for one under way)
        import silero_vad
        return silero_vad
    # onnxruntime's telemetry (1DS on Linux and macOS since 1.2x: a device id and an event queue
    # under ~/.cache): off, read once when onnxruntime starts; later events off too
    os.environ.setdefault('ORT_DISABLE_TELEMETRY', '1')
    threads = torch.get_num_threads()
    try:
        import silero_vad  # its first import sets torch to one thread for the whole process
    finally:
        torch.set_num_threads(threads)
    import onnxruntime
    onnxruntime.disable_telemetry_events()
    return silero_vad


def silero_model():
    """This thread's Silero VAD model (ONNX, CPU, one onnxruntime thread), loaded once."""
    model = getattr(_models, 'model', None)
    if model is None:
        with warnings.catch_warnings():  # its loader uses a deprecated importlib call
            warnings.simplefilter('ignore', DeprecationWarning)
            model = _models.model = silero().load_silero_vad(onnx=True)
    return model


def speech_probabilities(audio: np.ndarray) -> np.ndarray:
    """Silero's speech probability of each WINDOW of 16 kHz ``audio``: (n_windows,)."""
    if len(audio) < WINDOW:  # Silero refuses less than one window
        audio = np.pad(audio, (0, WINDOW - len(audio)))
    samples = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None]  # (1, N)
    with torch.inference_mode():
        return silero_model().audio_forward(samples, DETECTOR_RATE)[0].numpy()  # (n_windows,)


def at_detector_rate(audio: np.ndarray, rate: int) -> np.ndarray:
    """``audio`` resampled to DETECTOR_RATE (float32)."""
    if rate == DETECTOR_RATE:
        return audio
    from scipy.signal import resample_poly  # here: importing scipy.signal takes 0.6 s
    return resample_poly(audio, DETECTOR_RATE, rate).astype(np.float32)


def speech_segments(audio: np.ndarray, rate: int) -> list:
    """[(start, end)] sample ranges of ``audio`` (mono, ``rate`` Hz) that are speech, padded."""
    detect = at_detector_rate(audio, rate)
    stamps = silero().get_speech_timestamps_from_probs(
        speech_probabilities(detect).tolist(), sampling_rate=DETECTOR_RATE,
        threshold=SPEECH_THRESHOLD, min_speech_duration_ms=MIN_SPEECH_MS,
        min_silence_duration_ms=MIN_SILENCE_MS, speech_pad_ms=int(PAD_SECONDS * 1000),
        audio_length_samples=len(detect))
    scale = rate / DETECTOR_RATE
    return [(int(s['start'] * scale), min(len(audio), round(s['end'] * scale)))
            for s in stamps]


def check_speech_length(speech_seconds: float, audio_seconds: float, name: str,
                        min_seconds: float = MIN_SPEECH_SECONDS, purpose: str = '') -> None:
    """SetupError naming ``name`` when no speech, or under ``min_seconds`` of it (needed for
    ``purpose``, e.g. ' to enroll'), was found."""
    if speech_seconds == 0:
        raise SetupError(f'no speech found in {name} ({audio_seconds:.2f} s of audio: noise, '
                         'music or silence); record again, speaking close to the microphone')
    if speech_seconds < min_seconds:
        raise SetupError(f'{name}: only {speech_seconds:.2f} s of speech found (of '
                         f'{audio_seconds:.2f} s); at least {min_seconds:g} s is needed{purpose}: '
                         'record again, speaking for longer')


def speech_of(audio: np.ndarray, rate: int) -> np.ndarray:
    """The speech of ``audio`` (mono samples at ``rate`` Hz), the rest cut out (may be empty)."""
    return np.concatenate([audio[:0]] + [audio[s:e] for s, e in speech_segments(audio, rate)])


def keep_speech(audio: np.ndarray, rate: int, name: str = 'the recording',
                min_seconds: float = MIN_SPEECH_SECONDS) -> np.ndarray:
    """The speech of ``audio`` (mono samples at ``rate`` Hz), the rest cut out; SetupError
    naming ``name`` when no speech, or under ``min_seconds`` of it, is found."""
    speech = speech_of(audio, rate)
    check_speech_length(len(speech) / rate, len(audio) / rate, name, min_seconds)
    return speech
