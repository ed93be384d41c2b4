"""Atomic file writing and safe reading of untrusted pickles and checkpoints.

Every file the project writes goes to a temporary name in the same folder and is renamed into
place, so an interrupted run never leaves a half-written checkpoint, embedding or feature file.
"""
import contextlib
import os
import pickle
import re
import sys
import tempfile
import zipfile
from typing import Any, Iterator

import filelock

from configure import SetupError

LOCK_TIMEOUT_S = 120.0  # how long a second writer of a folder waits before it refuses


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


def lock_path(folder: str) -> str:
    """The lock file of ``folder``: ``.<name>.lock`` beside it, not in it, so that the lock
    stays one file while the folder itself is renamed or replaced (the enrollment swap)."""
    folder = os.path.abspath(folder)
    return os.path.join(os.path.dirname(folder), '.' + os.path.basename(folder) + '.lock')


@contextlib.contextmanager
def folder_lock(folder: str, what: str, timeout: float = LOCK_TIMEOUT_S) -> Iterator[str]:
    """Hold the lock of ``folder`` while writing ``what`` (e.g. 'enrollments', 'checkpoints')
    there, so that two runs writing one folder exclude each other. A second writer prints that
    it waits, waits up to ``timeout`` seconds (LOCK_TIMEOUT_S = 120 s by default), then refuses
    with one line naming the folder (SetupError). The lock is the operating system's (filelock),
    so a killed run releases it; the lock file ``.<name>.lock`` beside the folder stays.
    Yields the lock file's path."""
    path = lock_path(folder)
    lock = filelock.FileLock(path, timeout=timeout)
    try:
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            print(f'{folder}: another run is writing {what} there; waiting up to '
                  f'{timeout:g} s for it to finish', file=sys.stderr, flush=True)
            lock.acquire(timeout=timeout)
    except filelock.Timeout:
        raise SetupError(f'{folder}: another run is still writing {what} there after '
                         f'{timeout:g} s; wait for it to finish, or give another folder') from None
    except OSError as err:
        raise SetupError(f'{folder}: cannot make its lock file {path} ({err.strerror or err})') \
            from None
    try:
        yield path
    finally:
        lock.release()


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
    """torch.save to ``path`` atomically; a full disk or a write error is one line (torch says
    'enforce fail at inline_container.cc'), and the file already there stays as it was."""
    import torch  # imported here: feature tools that never touch torch start faster
    try:
        with atomic_path(path) as tmp, open(tmp, 'wb') as f:
            torch.save(obj, f)  # a file object: the same bytes for the same object, any name
    except (OSError, RuntimeError) as err:
        reason = getattr(err, 'strerror', None) or ('the disk is full or the file cannot be '
                                                    'written' if 'write' in str(err) else err)
        raise SetupError(f'{path}: cannot write it ({reason}); the file there (if any) is as '
                         'it was') from None


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
        raise SetupError(f'{path}: {load_failure(err, path)}') from None


def load_failure(err: Exception, path: str) -> str:
    """Why torch.load(weights_only=True) refused a file, in one short line (never torch's
    advice to load it with weights_only=False: the file is untrusted)."""
    text = re.sub(r'\x1b\[[0-9;]*m', '', str(err)).strip()
    if not written_by_torch_save(path):  # torch then tries it as a pickle: "holds objects"
        return ('cannot load as a checkpoint (not a file that torch.save wrote, or one cut '
                'short)')
    if 'weights only load failed' in text.lower():
        found = re.search(r'Unsupported global: GLOBAL ([\w.]+)', text)
        what = f'an object of {found.group(1)}' if found else 'objects'
        return (f'cannot load as a checkpoint: not one this project can load safely (it holds '
                f'{what}, not only tensors and plain values; nothing in it was run)')
    first = text.splitlines()[0][:120] if len(text) > 3 else type(err).__name__
    return f'cannot load as a checkpoint ({first})'


def written_by_torch_save(path: str) -> bool:
    """Whether ``path`` can be a torch.save file: a zip archive (torch >= 1.6) or a pickle of
    the legacy format (its first byte the pickle protocol's 0x80); True when unreadable here
    (torch's own error then says why)."""
    try:
        if not os.path.isfile(path) or zipfile.is_zipfile(path):
            return True
        with open(path, 'rb') as f:
            return f.read(1) == b'\x80'
    except OSError:
        return True


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
    folder = os.path.dirname(os.path.abspath(path))
    existing = nearest_existing(folder)
    if (os.path.exists(folder) and not os.path.isdir(folder)) or not os.path.isdir(existing) \
            or not os.access(existing, os.W_OK | os.X_OK):
        raise SetupError(f'--{setting} {path}: cannot write this file ({existing} is not a '
                         'writable folder)')
