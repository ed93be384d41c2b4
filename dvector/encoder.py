"""A Python API of one object: a model loaded once, recordings in, d-vectors and decisions out.

    import dvector
    encoder = dvector.Encoder()                    # the real-speech model (model_real/)
    d_vector = encoder.embed('me.wav')             # (E,) tensor, L2-normalised
    d_vector = encoder.embed(samples, 44100)       # a numpy array of samples at 44.1 kHz
    result = encoder.score('me_1.wav', 'me_2.wav')   # dvector.recordings.Comparison
    print(result.score, result.same_speaker, result.decided_on)

As Resemblyzer's ``VoiceEncoder``: the model is read once, when the object is made, and kept
on ``device``; every recording is mixed to mono, resampled to 16 kHz and its silences cut
(dvector/vad.py) before it is embedded, the same recipe the scripts use for wav files
(dvector/recordings.py). Bad input is a ``dvector.SetupError`` (a ValueError) of one line;
what the project notes on the way (resampling, a model's settings) goes to stderr, never to
stdout, so a program's own output stays its own.
"""
import os
from typing import Optional, Union

import numpy as np
import torch

import configure as c
from configure import SetupError
from DB_wav_reader import to_mono
from dvector.calibration import DEFAULT_P_TARGET
from dvector.checkpoint import inference_model, read_checkpoint, select_device
from dvector.embedding import embed_features
from dvector.features import recording_features
from dvector.recordings import (
    REAL_MODEL_PATH,
    TEST_FRAMES,
    Comparison,
    check_extraction_settings,
    compare_wavs,
    notes_to_stderr,
    trimmed_features,
    wav_features,
)
from dvector.vad import keep_speech

Audio = Union[str, os.PathLike, np.ndarray]


def samples_of(audio: np.ndarray, sample_rate: Optional[int]) -> np.ndarray:
    """(samples,) float32 at 16 kHz from an array of samples (mono, or (samples, channels))."""
    if sample_rate is None or isinstance(sample_rate, bool) \
            or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise SetupError(f'sample_rate={sample_rate!r}: give the rate of the samples in Hz '
                         '(a positive integer), e.g. embed(samples, 16000)')
    audio = np.asarray(audio)
    if audio.ndim == 2 and audio.shape[1] > audio.shape[0]:  # more channels than samples
        raise SetupError(f'audio: shape {audio.shape} reads as {audio.shape[1]} channels of '
                         f'{audio.shape[0]} samples; give (samples, channels), e.g. audio.T')
    if audio.ndim not in (1, 2) or audio.size == 0 or not (
            np.issubdtype(audio.dtype, np.number) and not np.iscomplexobj(audio)):
        raise SetupError(f'audio: expected a (samples,) or (samples, channels) array of real '
                         f'numbers, got shape {audio.shape} of {audio.dtype}')
    if not np.isfinite(audio).all():
        raise SetupError('audio: the samples are not all finite (NaN or infinite)')
    return to_mono(audio, int(sample_rate), c.SAMPLE_RATE, 'the array given')


def device_of(device) -> torch.device:
    """A CPU or CUDA torch.device from a name or a torch.device; SetupError for others."""
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        chosen = None
    if chosen is None or chosen.type not in ('cpu', 'cuda'):
        raise SetupError(f"device={device!r}: give 'cpu', 'cuda' (or 'cuda:N'), a torch.device "
                         'of either, or None (CUDA when present, else the CPU)')
    return chosen


class Encoder:
    """A speaker model for programs: ``embed`` recordings, ``score`` two of them.

    Args:
        model_dir: a folder of checkpoints (train.py's log_dir); the shipped real-speech model
            by default, found wherever the program runs from. Its lowest-validation-loss
            checkpoint is used.
        device: 'cpu', 'cuda', a torch.device, or None for CUDA when present, else the CPU.
        vad: keep only the speech of each recording (Silero VAD, dvector/vad.py).
    Raises SetupError (one line) for a folder without a usable checkpoint.
    """

    def __init__(self, model_dir: str = REAL_MODEL_PATH,
                 device: Union[str, torch.device, None] = None, vad: bool = True):
        if not isinstance(model_dir, (str, os.PathLike)) or os.path.isfile(model_dir):
            raise SetupError(f'model_dir={model_dir!r}: give a folder of checkpoints (a '
                             "train.py log_dir), not " + ('a file' if isinstance(
                                 model_dir, (str, os.PathLike)) else type(model_dir).__name__))
        self.model_dir, self.vad = os.fspath(model_dir), vad
        self.device = select_device(True) if device is None else device_of(device)
        if self.device.type == 'cuda' and not torch.cuda.is_available():
            raise SetupError(f'device={device!r}: no CUDA device here; give device=\'cpu\'')
        with notes_to_stderr():
            self.checkpoint = read_checkpoint(self.model_dir, 0)
            check_extraction_settings(self.checkpoint)
            self.model = inference_model(self.checkpoint, self.device)

    def features(self, audio: Audio, sample_rate: Optional[int] = None) -> np.ndarray:
        """(frames, bands) features of a wav file or an array of samples at ``sample_rate``."""
        if isinstance(audio, (str, os.PathLike)):
            return wav_features(os.fspath(audio), self.vad, self.model.recording_level_db)
        if isinstance(audio, torch.Tensor):
            audio = audio.detach().cpu().numpy()
        if not isinstance(audio, np.ndarray):
            raise SetupError(f'audio: give a wav file\'s path or an array of samples, not '
                             f'{type(audio).__name__}')
        samples = samples_of(audio, sample_rate)
        level = self.model.recording_level_db  # its training recordings' speech level
        if not self.vad:
            return trimmed_features(samples, 'the array given', level)
        return recording_features(keep_speech(samples, c.SAMPLE_RATE, 'the array given'), level)

    def embed(self, audio: Audio, sample_rate: Optional[int] = None) -> torch.Tensor:
        """The (E,) L2-normalised d-vector, on the CPU, of a wav file (any rate, any channels;
        ``sample_rate`` is read from the file) or of an array of samples at ``sample_rate``
        Hz ((samples,) or (samples, channels); integer PCM or floats in -1..1)."""
        with notes_to_stderr():
            feat = self.features(audio, sample_rate)
            name = os.fspath(audio) if isinstance(audio, (str, os.PathLike)) else 'the array'
            return embed_features(self.model, [feat], [name], TEST_FRAMES, self.device)[0].cpu()

    def score(self, path_a: Union[str, os.PathLike], path_b: Union[str, os.PathLike],
              p_target: float = DEFAULT_P_TARGET, c_miss: float = 1.0, c_fa: float = 1.0,
              thres: float = 0.0) -> Comparison:
        """Are two wav files of the same speaker? What dvector.score_wavs answers
        (dvector/recordings.py: the cosine score, the threshold and what it rests on, the
        decision, each recording's quality), with this encoder's model and device."""
        for name, path in (('path_a', path_a), ('path_b', path_b)):
            if not isinstance(path, (str, os.PathLike)):
                raise SetupError(f'{name}: score() takes two wav files\' paths, not '
                                 f'{type(path).__name__} (the cosine of two d-vectors of '
                                 'embed() is float(a @ b))')
        with notes_to_stderr():
            return compare_wavs(self.model, self.checkpoint, os.fspath(path_a),
                                os.fspath(path_b), self.vad, p_target, c_miss, c_fa, thres)
