"""File tables for wav and feature trees, and reading audio.

A tree is ``<dataset>/<speaker>/<utterance>.<ext>``: the speaker is the name of the file's parent
folder and the dataset the name of the folder above it (as in the tutorial).
"""
import glob
import os
import warnings
from fractions import Fraction

import numpy as np
import pandas as pd
from scipy.io import wavfile
from scipy.signal import resample_poly

import configure as c
from configure import SetupError

COLUMNS = ['filename', 'speaker_id', 'dataset_id']
JOIN = '+'  # 'a.p+b.p' in a trial list: those files as one recording (tools/long_trials.py)
_rates_noted = set()


def find_files(directory: str, pattern: str = '**/*.wav') -> list:
    """Sorted recursive search (the original's order was whatever glob returned); glob leaves
    out hidden files and folders (a killed run's temporary files)."""
    return sorted(glob.glob(os.path.join(directory, pattern), recursive=True))


def feature_name(path: str) -> tuple:
    """(speaker, feature file path) of a wav path, in the layouts that tools/extract_features.py
    writes and evaluate.py reads: ``.../<speaker>/<name>.wav`` -> ``.../<speaker>/<name>.p``,
    and VoxCeleb's ``.../<speaker>/<video>/<n>.wav`` (n all digits) ->
    ``.../<speaker>/<video>_<n>.p``. ValueError for a wav with no speaker folder."""
    parts = path.replace('\\', '/').split('/')
    stem = os.path.splitext(parts[-1])[0]
    if len(parts) < 2:
        raise ValueError('expected <speaker>/<name>.wav or <speaker>/<video>/<n>.wav')
    if len(parts) >= 3 and stem.isdigit():
        return parts[-3], '/'.join(parts[:-2] + [f'{parts[-2]}_{stem}.p'])
    return parts[-2], '/'.join(parts[:-1] + [stem + '.p'])


def read_DB_structure(directory: str, pattern: str = '**/*.wav') -> pd.DataFrame:
    """DataFrame with columns filename, speaker_id, dataset_id for every matching file."""
    files = [f.replace('\\', '/') for f in find_files(directory, pattern)]
    rows = [(f, f.split('/')[-2], f.split('/')[-3] if f.count('/') >= 2 else '') for f in files]
    return pd.DataFrame(rows, columns=COLUMNS)


def read_feats_structure(directory: str) -> pd.DataFrame:
    """All ``*.p`` feature files under ``directory``; SetupError when there are none."""
    if not os.path.isdir(directory):
        raise SetupError(f'{directory}: feature folder not found')
    table = read_DB_structure(directory, '**/*.p')
    if table.empty:
        raise SetupError(f'{directory}: no feature files (*.p) in this folder')
    return table


def read_training_folders(folders: str) -> pd.DataFrame:
    """The feature files of one folder, or of several separated by commas (e.g. a corpus and
    recordings of one's own); SetupError when a speaker is in two of them (it would become one
    speaker twice over, or two people as one)."""
    names = [f.strip() for f in folders.split(',')] if not os.path.isdir(folders) else [folders]
    if any(not name for name in names):
        raise SetupError(f'{folders}: an empty folder name in the list of folders')
    real = [os.path.realpath(name) for name in names]
    if len(set(real)) < len(real):
        raise SetupError(f'{folders}: a folder is listed twice')
    tables, owner = [], {}
    for name in names:
        table = read_feats_structure(name)
        for speaker in table['speaker_id'].unique():
            if speaker in owner:
                raise SetupError(f'speaker {speaker} is in both {owner[speaker]} and {name}: '
                                 'each speaker must come from one folder (rename one)')
            owner[speaker] = name
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def pcm_to_float(audio: np.ndarray) -> np.ndarray:
    """Integer PCM to float32 in [-1, 1] (divided by its full scale); floats pass through."""
    if audio.dtype == np.uint8:  # 8-bit WAV is unsigned, centred on 128
        return (audio.astype(np.float32) - 128.0) / 128.0
    if np.issubdtype(audio.dtype, np.integer):
        return audio.astype(np.float32) / float(-np.iinfo(audio.dtype).min)
    return audio.astype(np.float32, copy=False)


def read_audio(path: str, sample_rate: int = c.SAMPLE_RATE) -> np.ndarray:
    """Mono float32 audio at ``sample_rate``: stereo is mixed down, other rates resampled."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', wavfile.WavFileWarning)
            rate, audio = wavfile.read(path)
    except Exception as err:  # untrusted bytes: a cut header, zero channels, ... are one line
        raise SetupError(f'{path}: not a readable WAV file ({err})') from None
    if audio.size == 0:
        raise SetupError(f'{path}: empty audio (no samples)')
    if rate <= 0:
        raise SetupError(f'{path}: not a usable WAV file (sample rate {rate} Hz)')
    return to_mono(audio, rate, sample_rate, path)


def to_mono(audio: np.ndarray, rate: int, sample_rate: int = c.SAMPLE_RATE,
            name: str = 'the audio') -> np.ndarray:
    """Mono float32 audio at ``sample_rate`` from (samples,) or (samples, channels) PCM or
    float samples at ``rate`` Hz: channels mixed down, other rates resampled (a note, once per
    rate, names the first ``name``)."""
    audio = pcm_to_float(audio)
    if audio.ndim == 2:
        audio = audio.mean(axis=1, dtype=np.float32)
    if rate != sample_rate:
        if rate not in _rates_noted:
            _rates_noted.add(rate)
            print(f'note: resampling {rate} Hz audio to {sample_rate} Hz (first: {name})')
        ratio = Fraction(sample_rate, rate)
        audio = resample_poly(audio, ratio.numerator, ratio.denominator).astype(np.float32)
    return audio
