"""Atomic file writing and safe reading of untrusted pickles and checkpoints.

Every file the project writes goes to a temporary name in the same folder and is renamed into
place, so an interrupted run never leaves a half-written checkpoint, embedding or feature file.
"""
import contextlib
import io
import os
import pickle
import tempfile
from typing import Any, Iterator

from cli import SetupError


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

