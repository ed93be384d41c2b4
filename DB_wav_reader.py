"""File tables for wav and feature trees, and reading audio.

A tree is ``<dataset>/<speaker>/<utterance>.<ext>``: the speaker is the name of the file's parent
folder and the dataset the name of the folder above it (as in the tutorial).
"""
import fnmatch
import os
import warnings
from fractions import Fraction

import numpy as np
import pandas as pd
from scipy.io import wavfile

import configure as c
from configure import SetupError

COLUMNS = ['filename', 'speaker_id', 'dataset_id']
_rates_noted = set()


def find_files(directory: str, pattern: str = '**/*.wav') -> list:
    """Sorted recursive search for files whose name matches ``pattern``'s last part, each real
    file once. Hidden files and folders (a killed run's temporary files) are left out. A link
    to a folder outside the tree is followed (tools/split_heldout.py links speakers); a link to
    a folder of the tree itself (``spk/again -> .``, ``spk/loop -> ..``) is an alias and is
    not, so it adds no speaker and no copy. SetupError for a folder that cannot be read (its
    files would be missed without a word), a broken link or a file that is not a plain file."""
    if not os.path.isdir(directory):
        return []
    name_pattern = pattern.replace('\\', '/').split('/')[-1]
    files = {}  # real path -> (reached through a link, path)
    for path, real, linked in walk_matching(directory, name_pattern):
        if real not in files or (linked, path) < files[real]:  # the real name wins over links
            files[real] = (linked, path)
    return sorted(path for _, path in files.values())


def walk_matching(directory: str, name_pattern: str):
    """(path, real path, reached through a link) of each matching name under ``directory``;
    see find_files."""
    root = os.path.realpath(directory)
    seen, stack = {root}, [(directory, root, False)]
    while stack:
        folder, folder_real, linked = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as err:
            raise SetupError(f'{folder}: cannot read the folder ({err.strerror})') from None
        for entry in entries:
            if entry.name.startswith('.'):
                continue
            is_link = entry.is_symlink()
            real = os.path.realpath(entry.path) if is_link \
                else os.path.join(folder_real, entry.name)
            if entry.is_dir():
                inside = real == root or real.startswith(root + os.sep)
                if real not in seen and not (is_link and inside):
                    seen.add(real)
                    stack.append((entry.path, real, linked or is_link))
            elif fnmatch.fnmatch(entry.name, name_pattern):
                check_plain_file(entry)
                yield entry.path, real, linked or is_link


def check_plain_file(entry: os.DirEntry) -> None:
    """SetupError for a broken link or a FIFO, device or socket (reading one would block or
    fail later, far from its name)."""
    if entry.is_symlink() and not os.path.exists(entry.path):
        raise SetupError(f'{entry.path}: a broken link (its target {os.readlink(entry.path)} '
                         'does not exist)')
    if not entry.is_file():
        raise SetupError(f'{entry.path}: not a plain file (a FIFO, device or socket); move it '
                         'out of the folder')


def read_DB_structure(directory: str, pattern: str = '**/*.wav',
                      depth: int = 0) -> pd.DataFrame:
    """DataFrame with columns filename, speaker_id, dataset_id for every matching file.
    ``depth`` (0: any): the number of names below ``directory`` each file must have (2:
    ``<speaker>/<file>``); SetupError naming an example of a file at another depth."""
    files = [f.replace('\\', '/') for f in find_files(directory, pattern)]
    if depth:
        check_depth(directory, files, depth)
    rows = [(f, f.split('/')[-2], f.split('/')[-3] if f.count('/') >= 2 else '') for f in files]
    return pd.DataFrame(rows, columns=COLUMNS)


def check_depth(directory: str, files: list, depth: int) -> None:
    """SetupError unless every file is ``depth`` names below ``directory`` (a speaker is a
    folder at one depth: the parent of a corpus's train and test folders would make its test
    speakers training speakers, and ``<speaker>/<sub>/<file>`` a speaker named ``sub``)."""
    prefix = directory.replace('\\', '/').rstrip('/') + '/'
    levels = [f[len(prefix):].count('/') + 1 if f.startswith(prefix) else depth for f in files]
    odd = [(f, n) for f, n in zip(files, levels) if n != depth]
    if odd:
        example, n = odd[0]
        raise SetupError(f'{directory}: {len(odd)} of {len(files)} files are not at '
                         f'<folder>/<speaker>/<file> (e.g. {example}, {n} names below the '
                         'folder); give the folder that holds the speaker folders, and move '
                         'files in other places out')


def read_feats_structure(directory: str) -> pd.DataFrame:
    """All ``*.p`` feature files under ``directory``; SetupError when there are none."""
    if not os.path.isdir(directory):
        raise SetupError(f'{directory}: feature folder not found')
    table = read_DB_structure(directory, '**/*.p', depth=2)
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
        hint = ''
        if 'Unknown wave file format' in str(err):  # A-law, mu-law, ADPCM, MP3 in a WAV, ...
            hint = f'; convert it to PCM first, e.g. sox {path} -e signed-integer -b 16 out.wav'
        raise SetupError(f'{path}: not a readable WAV file ({err}){hint}') from None
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
    bad = audio.size - int(np.isfinite(audio).sum())
    if bad:  # a float WAV's NaN or infinity would make every feature and score NaN
        raise SetupError(f'{name}: {bad} of {audio.size} samples are not finite numbers (NaN '
                         'or infinity): not a recording')
    if audio.ndim == 2:
        audio = audio.mean(axis=1, dtype=np.float32)
    if rate != sample_rate:
        if rate not in _rates_noted:
            _rates_noted.add(rate)
            print(f'note: resampling {rate} Hz audio to {sample_rate} Hz (first: {name})')
        from scipy.signal import resample_poly  # here: importing scipy.signal takes ~1 s
        ratio = Fraction(sample_rate, rate)
        audio = resample_poly(audio, ratio.numerator, ratio.denominator).astype(np.float32)
    return audio
