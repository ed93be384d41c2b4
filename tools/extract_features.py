"""Turn every wav file under a folder into a feature pickle, with the tutorial's recipe.

    python tools/extract_features.py --wav_dir test_wavs --feat_dir feat_logfbank_nfilt40/test
    python tools/extract_features.py --wav_dir vox1/wav --feat_dir vox1_feat/train      # VoxCeleb

Layouts (the speaker is the folder right under wav_dir, which is what train.py expects):
    <wav_dir>/<speaker>/<name>.wav         -> <feat_dir>/<speaker>/<name>.p
    <wav_dir>/<speaker>/<video>/<n>.wav    -> <feat_dir>/<speaker>/<video>_<n>.p   (VoxCeleb)
Each output is a pickle {'feat': (n_frames, 40) array, 'label': '<speaker>'}, written
atomically; outputs that already exist are skipped, so an interrupted run resumes where it
stopped. Files run in parallel processes. A file that cannot be used (not a WAV, empty, shorter
than one 25 ms window) is reported on one line and the others go on; the exit status is then 1.
Silent audio (all samples zero) gives constant features: it is written, with a warning.
"""
import os
import sys

# One BLAS thread per process: the worker processes are the parallelism, and a threaded
# (frames x 257) @ (257 x 40) product is ~10x slower on a busy machine. Set before numpy loads,
# and only when run as the tool (importing this module must not change its importer's threads).
if __name__ == '__main__':
    for _var in ('OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS', 'MKL_NUM_THREADS'):
        os.environ.setdefault(_var, '1')

import contextlib  # noqa: E402
import functools  # noqa: E402
import io  # noqa: E402
import multiprocessing  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository
import configure as c  # noqa: E402
from DB_wav_reader import find_files, read_audio  # noqa: E402
from dvector import cli  # noqa: E402
from dvector.feature_paths import feature_name  # noqa: E402
from dvector.features import fast_logfbank, window_length  # noqa: E402
from dvector.fileio import remove_stale_temporaries, save_pickle  # noqa: E402

# ---- settings (override on the command line, e.g. --jobs 1) -----------------------------
wav_dir = c.TEST_WAV_DIR             # <wav_dir>/<speaker>/<name>.wav or .../<video>/<n>.wav
feat_dir = c.TEST_FEAT_DIR           # outputs: <feat_dir>/<speaker>/<name>.p
dtype = 'float32'                    # stored features: float32 (half the size), float64, float16
# worker processes: one per CPU this process may use
jobs = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count() or 1
chunk_size = 0                       # files per task sent to a worker; 0 = automatic
overwrite = False                    # recompute files whose output already exists
progress = True                      # show a progress bar
sample_rate = c.SAMPLE_RATE          # audio at other rates is resampled to this
n_bands = c.FILTER_BANK              # mel bands (configure.py's FILTER_BANK)
use_logscale = c.USE_LOGSCALE        # 20*log10 of the energies
use_delta = c.USE_DELTA              # append deltas and delta-deltas (3x the bands)
use_scale = c.USE_SCALE              # also divide each band by its std
# ------------------------------------------------------------------------------------------
SETTING_RULES = {  # the allowed values of each setting, checked before any work
    'wav_dir': cli.FOLDER, 'feat_dir': cli.FOLDER,
    'dtype': cli.one_of('float32', 'float64', 'float16'),
    'jobs': cli.at_least(1), 'chunk_size': cli.at_least(0), 'overwrite': cli.FLAG,
    'progress': cli.FLAG, 'sample_rate': cli.between(1000, 192000),
    'n_bands': cli.between(1, 128), 'use_logscale': cli.FLAG, 'use_delta': cli.FLAG,
    'use_scale': cli.FLAG}

DTYPES = ('float32', 'float64', 'float16')


def check_layout(relative: str) -> None:
    """ValueError unless ``relative`` is <speaker>/<name>.wav or <speaker>/<video>/<n>.wav
    (any other depth would make a folder below the speaker a speaker, or a nested tree)."""
    parts = relative.replace('\\', '/').split('/')
    voxceleb = len(parts) == 3 and os.path.splitext(parts[-1])[0].isdigit()
    if len(parts) > 2 and not voxceleb:
        raise ValueError('not at <speaker>/<name>.wav or <speaker>/<video>/<n>.wav under '
                         'wav_dir (give the folder that holds the speaker folders)')


def plan_jobs(source: str, target: str, redo: bool) -> tuple:
    """(jobs to run as (wav, output, label), number skipped, failure messages)."""
    todo, skipped, failures, claimed = [], 0, [], {}
    for relative in [os.path.relpath(f, source)  # .wav in any case, as the scripts take them
                     for f in find_files(source, '**/*.[wW][aA][vV]')]:
        wav = os.path.join(source, relative)
        try:
            check_layout(relative)
            label, out_rel = feature_name(relative)
        except ValueError as err:
            failures.append(f'{wav}: {err}')
            continue
        if out_rel in claimed:  # e.g. spk/a_1.wav and spk/a/1.wav
            failures.append(f'{wav}: same output {out_rel} as {claimed[out_rel]}')
            continue
        claimed[out_rel] = wav
        out = os.path.join(target, out_rel)
        if os.path.exists(out) and not redo:
            skipped += 1
        else:
            todo.append((wav, out, label))
    return todo, skipped, failures


def check_writable(folder: str) -> None:
    """SetupError (one line) unless files can be created in ``folder``."""
    try:
        os.makedirs(folder, exist_ok=True)
        probe = os.path.join(folder, f'.write_test_{os.getpid()}.tmp')
        with open(probe, 'wb'):
            pass
        os.remove(probe)
    except OSError as err:
        raise cli.SetupError(f'{folder}: output folder is not writable ({err.strerror or err})')


def load_checked(wav: str, recipe: dict) -> tuple:
    """(audio, notes) or ValueError naming the problem; notes are read_audio's printed lines."""
    with contextlib.redirect_stdout(io.StringIO()) as printed:  # resampling notes, deduplicated
        audio = read_audio(wav, recipe['sample_rate'])
    window = window_length(recipe['sample_rate'])
    if len(audio) == 0:
        raise ValueError('empty audio (no samples)')
    if len(audio) < window:
        raise ValueError(f'audio too short: {len(audio)} samples at {recipe["sample_rate"]} Hz, '
                         f'one analysis window is {window} ({c.WINDOW_SECONDS * 1000:g} ms)')
    if not np.isfinite(audio).all():
        raise ValueError('audio contains NaN or infinite samples')
    return audio, printed.getvalue().splitlines()


def extract_one(job: tuple, recipe: dict, out_dtype: str) -> tuple:
    """Worker: (wav, status 'done'|'failed', message lines, audio seconds)."""
    wav, out, label = job
    try:
        audio, notes = load_checked(wav, recipe)
        feat = fast_logfbank(audio, **recipe).astype(out_dtype)
        if not np.isfinite(feat).all():  # float16 tops out at 65504
            raise ValueError(f'features overflow {out_dtype}; use --dtype float32')
        if not np.any(audio):
            notes.append(f'warning: {wav}: silent audio (all samples zero): constant features')
        save_pickle({'feat': feat, 'label': label}, out)
    except cli.SetupError as err:  # read_audio's message already names the file
        return wav, 'failed', [f'failed: {err}'], 0.0
    except OSError as err:
        return wav, 'failed', [f'failed: {out}: cannot write ({err.strerror or err})'], 0.0
    except Exception as err:  # noqa: BLE001 - one bad file must not stop the others
        return wav, 'failed', [f'failed: {wav}: {err}'], 0.0
    return wav, 'done', notes, len(audio) / recipe['sample_rate']


def run_jobs(todo: list, worker, n_jobs: int, chunk: int):
    """Yield the worker's results, in worker processes when it pays off."""
    if n_jobs <= 1 or len(todo) <= 1:
        yield from map(worker, todo)
        return
    chunk = chunk or max(1, min(32, len(todo) // (n_jobs * 4)))  # few round trips, even load
    # fork: workers inherit the loaded modules and settings instead of re-importing (seconds)
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context('fork' if 'fork' in methods else None)
    with context.Pool(min(n_jobs, len(todo))) as pool:
        yield from pool.imap_unordered(worker, todo, chunksize=chunk)


def check_settings() -> None:
    if dtype not in DTYPES:
        raise cli.SetupError(f'--dtype {dtype}: choose one of {", ".join(DTYPES)}')
    if jobs < 1:
        raise cli.SetupError(f'--jobs {jobs}: need at least 1')
    if not os.path.isdir(wav_dir):
        raise cli.SetupError(f'{wav_dir}: wav folder not found')


def main() -> None:
    cli.override_settings(globals(), doc=__doc__)
    check_settings()
    start = time.perf_counter()
    todo, skipped, failures = plan_jobs(wav_dir, feat_dir, overwrite)
    if not todo and not skipped and not failures:
        raise cli.SetupError(f'{wav_dir}: no .wav files in this folder')
    check_writable(feat_dir)
    if remove_stale_temporaries(feat_dir, recursive=True):  # a killed run's unfinished files
        print(f'note: removed unfinished temporary files that a stopped run left in {feat_dir}')
    for line in failures:
        print(f'failed: {line}', file=sys.stderr)
    recipe = {'sample_rate': sample_rate, 'n_bands': n_bands,  # fast_logfbank's keywords
              'use_logscale': use_logscale, 'use_delta': use_delta, 'use_scale': use_scale}
    worker = functools.partial(extract_one, recipe=recipe, out_dtype=dtype)
    done, failed, seconds, noted = 0, len(failures), 0.0, set()
    bar = tqdm(total=len(todo), unit='file', disable=not progress or not todo, file=sys.stderr)
    for _wav, status, messages, audio_seconds in run_jobs(todo, worker, jobs, chunk_size):
        for line in messages:
            key = line.split(' (first:')[0]  # each worker notes a resampled rate once
            if key not in noted:
                noted.add(key)
                bar.write(line, file=sys.stderr if status == 'failed' else sys.stdout)
        done, failed = done + (status == 'done'), failed + (status == 'failed')
        seconds += audio_seconds
        bar.update()
    bar.close()
    print_summary(done, skipped, failed, seconds, time.perf_counter() - start)
    if failed:
        raise cli.SetupError(f'{failed} file(s) failed (listed above); the others are written')


def print_summary(done: int, skipped: int, failed: int, audio_s: float, wall_s: float) -> None:
    """One line: counts, then speed (real-time factor = audio seconds / wall seconds)."""
    speed = ''
    if done:
        wall_s = max(wall_s, 1e-9)
        speed = (f'; {wall_s:.2f} s, {done / wall_s:.1f} files/s, {audio_s:.0f} s of audio = '
                 f'{audio_s / wall_s:.0f}x real time')
    print(f'{done} files done, {skipped} skipped (already there), {failed} failed{speed}; '
          f'features in {feat_dir}')


if __name__ == '__main__':
    cli.run(main)
