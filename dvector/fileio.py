"""Atomic file writing and safe reading of untrusted pickles and checkpoints.

Every file the project writes goes to a temporary name in the same folder and is renamed into
place, so an interrupted run never leaves a half-written checkpoint, embedding or feature file.
"""
import contextlib
import os
import pickle
import tempfile
from typing import Any, Iterator

from configure import SetupError


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', suffix='.tmp', dir=folder)
    os.close(fd)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_torch(obj: Any, path: str) -> None:
    import torch  # imported here: feature tools that never touch torch start faster
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def save_pickle(obj: Any, path: str) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, 'wb') as f:
            pickle.dump(obj, f, protocol=4)


def load_torch(path: str) -> Any:
    """torch.load restricted to tensors and plain values (weights_only=True)."""
    import torch
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except FileNotFoundError:
        raise SetupError(f'{path}: file not found') from None
    except Exception as err:  # corrupt file or a pickle that needs more than weights
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SetupError(f'{path}: cannot load as a checkpoint ({first})') from None
