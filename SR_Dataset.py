"""Reading feature files and turning them into training and validation batches.

A feature file is a pickle of ``{'feat': (n_frames, 40) array, 'label': speaker id}``. Reading
drops 0.5 s at each end (the tutorial's crude silence trim). Training takes one random window
of ``NUM_WIN_SIZE`` frames per utterance; validation uses whole utterances. Tensors are laid out
(channel 1, bands, frames), so a training batch is (B, 1, 40, 100).
"""
import io
import os
import pickle
import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Optional

import numpy as np
import torch
from torch.utils.data import Dataset

import configure as c
from configure import SetupError

# a validation utterance longer than this is validated on its middle this many frames (30 s):
# validation batches are tiled to their longest utterance, so one 1,000-s file would need
# gigabytes; no utterance of the tutorial's DB is this long (10 s at most)
VALID_MAX_FRAMES = 3000

# Globals a numpy array pickle needs (numpy 1.x and 2.x names), and nothing else.
_ALLOWED_GLOBALS = {
    ('numpy.core.multiarray', '_reconstruct'), ('numpy._core.multiarray', '_reconstruct'),
    ('numpy.core.multiarray', 'scalar'), ('numpy._core.multiarray', 'scalar'),
    ('numpy', 'ndarray'), ('numpy', 'dtype'),
    ('numpy.core.numeric', '_frombuffer'), ('numpy._core.numeric', '_frombuffer'),
    ('builtins', 'slice'), ('collections', 'OrderedDict'),
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that builds numpy arrays, dtypes and plain Python values only."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f'refusing to load {module}.{name}')


def load_pickle(path: str) -> Any:
    """Read an untrusted pickle; anything but arrays and plain values raises SetupError."""
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError as err:
        raise SetupError(f'{path}: cannot read ({err.strerror})') from None
    try:
        return RestrictedUnpickler(io.BytesIO(data)).load()
    except pickle.UnpicklingError as err:
        raise SetupError(f'{path}: not a safe feature pickle ({err})') from None
    except Exception as err:
        raise SetupError(f'{path}: corrupt pickle ({type(err).__name__}: {err})') from None


def read_feature_file(filename: str) -> tuple:
    """The untrimmed (n_frames, dims) float32 features and the label of one feature pickle."""
    data = load_pickle(filename)
    if not isinstance(data, dict) or 'feat' not in data:
        raise SetupError(f"{filename}: not a feature file (expected a dict with 'feat' and "
                         f"'label', got {type(data).__name__})")
    feat = np.asarray(data['feat'])
    if feat.ndim != 2 or 0 in feat.shape or feat.dtype.kind not in 'fiu':
        raise SetupError(f'{filename}: features must be a non-empty (frames, bands) array of '
                         f'real numbers, got shape {feat.shape} dtype {feat.dtype}')
    feat = feat.astype(np.float32)
    if not np.isfinite(feat).all():
        raise SetupError(f'{filename}: features contain NaN or infinite values')
    return feat, str(data.get('label', os.path.basename(os.path.dirname(filename))))


def trim_silence(feat: np.ndarray, trim: int = c.TRIM_FRAMES) -> np.ndarray:
    """Drop ``trim`` frames at each end; an utterance too short for that is kept whole."""
    return feat[trim:len(feat) - trim] if len(feat) > 2 * trim else feat


def read_MFB(filename: str) -> tuple:
    """Trimmed float32 features (n_frames, 40) and label, as the tutorial reads them."""
    feat, label = read_feature_file(filename)
    return trim_silence(feat), label


def random_window(feat: np.ndarray, win_size: int = c.NUM_WIN_SIZE) -> np.ndarray:
    """The tutorial's training crop: tile short utterances, centre drawn in [half, n - half)."""
    half = win_size // 2
    while len(feat) - half <= half:  # the tutorial doubles until long enough
        feat = np.concatenate([feat, feat], axis=0)
    centre = random.randrange(half, len(feat) - half)
    return feat[centre - half:centre - half + win_size]


def middle(feat: np.ndarray, most: int) -> np.ndarray:
    """The middle ``most`` frames of ``feat`` (all of it when shorter)."""
    if len(feat) <= most:
        return feat
    cut = (len(feat) - most) // 2
    return feat[cut:cut + most]


def to_input(feat: np.ndarray) -> torch.Tensor:
    """(frames, bands) array -> (1, bands, frames) float tensor."""
    return torch.from_numpy(np.ascontiguousarray(feat.T)).unsqueeze(0)


def estimated_bytes(files: list) -> int:
    """Rough float32 in-memory size of the features in ``files`` (pickles hold up to float64)."""
    return sum(os.path.getsize(f) for f in files) * 2


def available_memory() -> Optional[int]:
    try:
        return os.sysconf('SC_AVPHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')
    except (ValueError, OSError, AttributeError):
        return None


def load_features(files: list, n_threads: int = 8) -> list:
    """Read and trim every file in parallel threads; returns arrays in the order of ``files``."""
    with ThreadPoolExecutor(n_threads) as pool:
        return [feat for feat, _ in pool.map(read_MFB, files)]


class DvectorDataset(Dataset):
    """Utterances with speaker labels. ``train=True``: one random window per item; else whole.

    Features are read once into memory when they fit (an estimate from the file sizes), else
    read from disk per item, which is slower but works for any corpus size.
    """

    def __init__(self, files: list, speaker_ids: list, spk_to_idx: dict, train: bool = True,
                 win_size: int = c.NUM_WIN_SIZE, in_memory: bool = True,
                 speed_factors: tuple = (), perturb: Optional[Callable] = None,
                 by_length: bool = True):
        self.files, self.train, self.win_size = list(files), train, win_size
        self.labels = [spk_to_idx[s] for s in speaker_ids]
        # speed perturbation: crops played at speed_factors[k - 1] by perturb(crop, factor,
        # win_size) (dvector.augment.speed_perturb) are class label + k * n (train.validate
        # folds them back with % n_speakers)
        if speed_factors and perturb is None:
            raise ValueError('speed_factors need a perturb function')
        self.speed_factors, self.n_speakers = (1.0,) + tuple(speed_factors), len(spk_to_idx)
        self.perturb = perturb
        self.feats = None
        if in_memory:
            need, free = estimated_bytes(self.files), available_memory()
            if free is not None and need > free // 2:
                print(f'note: features need about {need / 1e9:.1f} GB, more than half the free '
                      f'memory ({free / 1e9:.1f} GB): reading them from disk per sample instead')
            else:
                self.feats = load_features(self.files)
                if not train and by_length:  # whole utterances of similar length batch with
                    self.sort_by_length()    # less padding (the tutorial: the split's order)

    def sort_by_length(self) -> None:
        order = sorted(range(len(self.files)), key=lambda i: -len(self.feats[i]))
        self.files = [self.files[i] for i in order]
        self.labels = [self.labels[i] for i in order]
        self.feats = [self.feats[i] for i in order]

    def __len__(self) -> int:
        return len(self.files)

    def features(self, index: int) -> np.ndarray:
        return self.feats[index] if self.feats is not None else read_MFB(self.files[index])[0]

    def __getitem__(self, index) -> tuple:
        """``index``: an int, or (int, k) to read a training crop at speed k
        (dvector.pair_batches.PairBatchSampler)."""
        index, k = index if isinstance(index, tuple) else (index, None)
        feat, label = self.features(index), self.labels[index]
        if self.train:
            if k is None:  # no draw without speed factors: the tutorial's crops stay the same
                k = random.randrange(len(self.speed_factors)) if len(self.speed_factors) > 1 else 0
            factor = self.speed_factors[k]
            feat = random_window(feat, round(self.win_size * factor))
            if k:
                feat = self.perturb(feat, factor, self.win_size)
                label += k * self.n_speakers
        else:
            feat = middle(feat, VALID_MAX_FRAMES)  # memory bounded whatever a file's length
        return to_input(feat), label  # (1, 40, frames), int

    def common_n_bands(self, *others: 'DvectorDataset') -> int:
        """n_bands, the number of bands that every file of this set (and ``others``) has;
        SetupError naming the first file with another count. Read per sample, only the first
        file is checked here (read_MFB checks nothing of the band count)."""
        pairs = []  # (file, n_bands)
        for data in (self,) + others:
            if data.feats is not None:
                pairs += [(f, x.shape[1]) for f, x in zip(data.files, data.feats)]
            else:
                pairs.append((data.files[0], read_MFB(data.files[0])[0].shape[1]))
        counts = [n for _, n in pairs]
        n_bands = max(set(counts), key=counts.count)  # the usual count; the odd files are named
        odd = [(f, n) for f, n in pairs if n != n_bands]
        if odd:
            raise SetupError(f'{odd[0][0]}: {odd[0][1]} feature bands, but the other training '
                             f'files have {n_bands} ({len(odd)} files differ); extract all '
                             'features with the same settings')
        return n_bands

    def short_utterances(self) -> list:
        """Files with fewer frames (after the trim) than one training window."""
        if self.feats is None:
            return []
        return [f for f, x in zip(self.files, self.feats) if len(x) < self.win_size]


def collate_fn_feat_padded(batch: list) -> tuple:
    """Whole utterances, longest first, each shorter one tiled (repeated) to the longest."""
    batch = sorted(batch, key=lambda item: item[0].shape[-1], reverse=True)
    longest = batch[0][0].shape[-1]
    feats = [torch.cat([x] * (-(-longest // x.shape[-1])), dim=-1)[..., :longest]
             for x, _ in batch]
    labels = torch.tensor([y for _, y in batch], dtype=torch.long)
    return torch.stack(feats), labels  # (B, 1, 40, T_max), (B,)
