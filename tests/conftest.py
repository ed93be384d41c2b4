"""Shared fixtures: the repository root, a small synthetic feature tree, the real DB slice."""
import os
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest

# under pytest-xdist (-n 2) each worker and the scripts it runs use one core: two workers of
# two threads each would fight over the two cores of a laptop or CI machine
if os.environ.get('PYTEST_XDIST_WORKER'):
    os.environ.setdefault('OMP_NUM_THREADS', '1')

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TUTORIAL_DB = os.path.join(os.path.dirname(ROOT), 'shared', 'tutorial_db')
sys.path.insert(0, ROOT)

from dvector.fileio import save_pickle  # noqa: E402


def pytest_configure(config):
    """The ``cuda`` marker: a test that takes a CUDA path when a GPU is present and runs on a
    CPU too (tools/benchmarks/gpu_check.py runs them on a GPU with ``pytest -m cuda``)."""
    config.addinivalue_line('markers', 'cuda: takes a CUDA path when a GPU is present (runs on '
                            'a CPU too); pytest -m cuda runs these')


def run_script(*args, cwd=ROOT) -> subprocess.CompletedProcess:
    """Run a repository script as ``python <args>`` in ``cwd`` would, in this process
    (``runpy``, as ``__main__``, with its own argv, folder, output and warnings); returns a
    CompletedProcess (returncode, stdout, stderr). A Python start with torch costs about 2.5 CPU
    seconds, most of a short script's run and most of the suite's time: tests that need what only
    a process has (README's commands, a kill, a closed pipe, another environment) start one with
    subprocess themselves."""
    return run_here(list(args), str(cwd))


def run_here(args: list, cwd: str) -> subprocess.CompletedProcess:
    """``python <args>`` run in this process; see run_script."""
    import contextlib
    import io
    import runpy
    import signal
    import traceback
    import warnings
    script = os.path.join(cwd, args[0])
    out, err, code = io.StringIO(), io.StringIO(), 0
    saved = (sys.argv, list(sys.path), os.getcwd(), signal.getsignal(signal.SIGTERM))
    try:
        os.chdir(cwd)
        sys.argv, sys.path[0:0] = [script, *args[1:]], [os.path.dirname(script)]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                warnings.catch_warnings():  # a fresh "once per place" record, as a new process
            try:
                runpy.run_path(script, run_name='__main__')
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
                if isinstance(stop.code, str):
                    print(stop.code, file=sys.stderr)
            except BaseException:  # noqa: BLE001  (what a process would print, and exit 1)
                traceback.print_exc()
                code = 1
    finally:
        sys.argv, sys.path[:] = saved[0], saved[1]
        os.chdir(saved[2])
        signal.signal(signal.SIGTERM, saved[3])
    return subprocess.CompletedProcess([sys.executable, *args], code, out.getvalue(),
                                       err.getvalue())


def assert_one_line_error(result: subprocess.CompletedProcess, *parts: str) -> None:
    """The script refused in one line: exit 1, one ``error:`` line on stderr (progress bars
    aside) holding each of ``parts``."""
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    lines = [line for line in result.stderr.strip().splitlines()
             if '|' not in line]  # progress bars (the download's) are not messages
    assert len(lines) == 1 and lines[0].startswith('error: '), result.stderr[-2000:]
    for part in parts:
        assert part in lines[0], lines[0]


def make_feature_tree(root, n_speakers=4, n_utts=6, frames=(220, 320), seed=0,
                      names=('enroll', 'test')):
    """A feature tree of learnable synthetic speakers: each has its own spectral profile.

    Writes ``root/train/<spk>/<spk>_uNN.p`` and ``root/test/<spk>/{enroll,test}.p`` (test
    speakers are different ones) and returns (train_dir, test_dir).
    """
    rng = np.random.default_rng(seed)

    def utterance(profile, n):
        return (profile + rng.normal(0, 1.0, (n, 40))).astype(np.float16)

    train_dir, test_dir = os.path.join(root, 'train'), os.path.join(root, 'test')
    for i in range(n_speakers):
        spk, profile = f'syn_s{i:02d}', rng.normal(0, 2.0, 40)
        for u in range(n_utts):
            n = int(rng.integers(*frames))
            save_pickle({'feat': utterance(profile, n), 'label': spk},
                        os.path.join(train_dir, spk, f'{spk}_u{u:02d}.p'))
    for i in range(3):
        spk, profile = f'syn_t{i:02d}', rng.normal(0, 2.0, 40)
        for name in names:
            save_pickle({'feat': utterance(profile, 600), 'label': spk},
                        os.path.join(test_dir, spk, name + '.p'))
    return train_dir, test_dir


# the shipped models and enrollments, and the folder wav enrollments go to by default
SHIPPED = ('model_saved', 'enroll_embeddings', 'model_real', 'enroll_embeddings_real')


@pytest.fixture(scope='session', autouse=True)
def shipped_files_stay_as_they_are():
    """No test may change the shipped model or enrollments (scripts run with their defaults
    write there)."""
    def listing():
        return {d: sorted((f, os.path.getsize(os.path.join(ROOT, d, f)))
                          for f in os.listdir(os.path.join(ROOT, d)))
                if os.path.isdir(os.path.join(ROOT, d)) else None for d in SHIPPED}
    before = listing()
    yield
    assert listing() == before, 'a test changed ' + ', '.join(SHIPPED)


def made_once(tmp_path_factory, name: str, make) -> str:
    """A folder ``make(folder)`` fills, made once per test session: under pytest-xdist
    (``-n 2``) the first worker makes it in the folder the workers share, the others wait for
    it (a file lock) and use it. Tests only read it (they copy it to change it)."""
    from filelock import FileLock
    base = tmp_path_factory.getbasetemp()
    if os.environ.get('PYTEST_XDIST_WORKER'):
        base = base.parent  # .../pytest-N/, above each worker's popen-gwK/
    folder, done = base / name, base / (name + '.done')
    with FileLock(str(base / (name + '.lock'))):
        if not done.exists():
            if folder.exists():  # a worker stopped half-way: start again
                shutil.rmtree(folder)
            folder.mkdir()
            make(str(folder))
            done.touch()
    return str(folder)


@pytest.fixture(scope='session')
def feature_tree(tmp_path_factory):
    folder = made_once(tmp_path_factory, 'feats', make_feature_tree)
    return os.path.join(folder, 'train'), os.path.join(folder, 'test')


def train_tiny_model(log_dir: str, train_dir: str) -> None:
    result = run_script('train.py', '--train_feat_dir', train_dir, '--n_epochs', '2',
                        '--log_dir', log_dir, '--batch_size', '8', '--val_ratio', '25')
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope='session')
def trained_run(tmp_path_factory, feature_tree):
    """A model trained 2 epochs on the synthetic tree, once per session (all workers share
    it): (log_dir, train_dir, test_dir)."""
    train_dir, test_dir = feature_tree
    log_dir = made_once(tmp_path_factory, 'run', lambda d: train_tiny_model(d, train_dir))
    return log_dir, train_dir, test_dir


def needs_tutorial_db():
    return pytest.mark.skipif(not os.path.isdir(TUTORIAL_DB),
                              reason=f'real tutorial DB slice not found at {TUTORIAL_DB}')


def write_24bit(path, audio: np.ndarray, rate: int = 16000) -> str:
    """A 24-bit PCM WAV (scipy cannot write one): little-endian 3-byte samples."""
    ints = np.round(audio * (2 ** 23 - 1)).astype('<i4')
    data = ints.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    header = struct.pack('<4sI4s4sIHHIIHH4sI', b'RIFF', 36 + len(data), b'WAVE', b'fmt ', 16,
                         1, 1, rate, rate * 3, 3, 24, b'data', len(data))
    with open(path, 'wb') as f:
        f.write(header + data)
    return str(path)
