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


def give_usual_permissions(path: str, mode: int) -> None:
    """``mode`` less the umask, as open() and makedirs() give; mkstemp and mkdtemp make their
    files and folders private to the user."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, mode & ~umask)


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', suffix='.tmp', dir=folder)
    os.close(fd)
    try:
        yield tmp
        give_usual_permissions(tmp, 0o666)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def remove_stale_temporaries(folder: str, recursive: bool = False) -> int:
    """Remove the hidden ``.<name>.<random>.tmp`` files that atomic_path leaves when a run is
    killed mid-write, in ``folder`` (and below it when ``recursive``); returns how many."""
    removed = 0
    for root, subdirs, names in os.walk(folder):
        for name in names:
            if name.startswith('.') and name.endswith('.tmp'):
                os.remove(os.path.join(root, name))
                removed += 1
        if not recursive:
            break
    return removed


def save_torch(obj: Any, path: str) -> None:
    import torch  # imported here: feature tools that never touch torch start faster
    with atomic_path(path) as tmp, open(tmp, 'wb') as f:
        torch.save(obj, f)  # a file object: the same bytes for the same object, whatever the name


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


def nearest_existing(path: str) -> str:
    """``path`` itself or the closest folder above it that exists."""
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


def check_writable_dir(path: str, setting: str) -> None:
    """SetupError, before any work, when the folder ``path`` cannot be made or written."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise SetupError(f'--{setting} {path}: is a file, not a folder')
    existing = nearest_existing(path)
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
        raise SetupError(f'--{setting} {path}: cannot write there ({existing} is not a '
                         'writable folder)')


def check_writable_file(path: str, setting: str) -> None:
    """SetupError, before any work, when the file ``path`` cannot be written."""
    if os.path.isdir(path):
        raise SetupError(f'--{setting} {path}: is a folder, not a file')
    check_writable_dir(os.path.dirname(os.path.abspath(path)), setting)
