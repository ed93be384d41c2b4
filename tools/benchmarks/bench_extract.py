"""Time extract_features.py against a straightforward single-process loop, in the same run.

    python tools/benchmarks/bench_extract.py               # generated set + the tutorial's wavs
    python tools/benchmarks/bench_extract.py --n_files 1000 --jobs 2

Baseline: for each wav, DB_wav_reader.read_audio -> features.logfbank_features ->
fileio.save_pickle, in this process with numpy's default BLAS threading (what a user would
write). Tool: ``python tools/extract_features.py`` as a subprocess, with --jobs 1 and --jobs N.
Prints files/s and the real-time factor (audio seconds / wall seconds) of each; the tool's
wall time is shown with and without its interpreter start-up (imports: torch, scipy, pandas).
Both write float64 features; the script checks they agree to 1e-9 (the last bits of the
40-band matrix product depend on the BLAS thread count, which the tool sets to 1 per process:
expect ~1e-14, the same as OPENBLAS_NUM_THREADS=1 gives the baseline).
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
from scipy.io import wavfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

from DB_wav_reader import read_audio  # noqa: E402
from dvector import cli  # noqa: E402
from dvector.features import logfbank_features  # noqa: E402
from dvector.fileio import save_pickle  # noqa: E402
from SR_Dataset import load_pickle  # noqa: E402

# ---- settings ----
n_files = 400            # generated wavs (16 kHz, 16-bit), 20 speakers
seconds = 5.0            # length of each generated wav (the tutorial's train utterances: 2-5 s)
jobs = os.cpu_count() or 1   # worker processes for the tool's parallel run
tutorial_wavs = 'test_wavs'   # also timed on these wavs (the demo's; the tutorial DB's: give them)
work_dir = ''            # where the sets are written; '' = a temporary folder, removed after
# ----
SETTING_RULES = {  # the allowed values of each setting, checked before any work
    'n_files': cli.at_least(1), 'seconds': cli.above(0, 600), 'jobs': cli.at_least(1),
    'tutorial_wavs': cli.TEXT, 'work_dir': cli.TEXT}


def generate_set(root: str, count: int, length_s: float, rate: int = 16000) -> str:
    """``count`` wavs of tones in noise under ``root/wavs/spkNN/``; returns the wav folder."""
    rng = np.random.default_rng(0)
    folder = os.path.join(root, 'wavs')
    t = np.arange(int(length_s * rate)) / rate
    for i in range(count):
        tone = np.sin(2 * np.pi * rng.uniform(100, 400) * t) * rng.uniform(0.1, 0.5)
        audio = tone + 0.05 * rng.standard_normal(len(t))
        path = os.path.join(folder, f'spk{i % 20:02d}', f'utt{i:04d}.wav')
        os.makedirs(os.path.dirname(path), exist_ok=True)
        wavfile.write(path, rate, (audio * 32767 * 0.5).astype(np.int16))
    return folder


def baseline(source: str, target: str) -> tuple:
    """The straightforward loop; returns (files, audio seconds, wall seconds)."""
    start, audio_s, files = time.perf_counter(), 0.0, 0
    for speaker in sorted(os.listdir(source)):
        for name in sorted(os.listdir(os.path.join(source, speaker))):
            audio = read_audio(os.path.join(source, speaker, name))
            feat = logfbank_features(audio)
            save_pickle({'feat': feat, 'label': speaker},
                        os.path.join(target, speaker, name[:-4] + '.p'))
            audio_s, files = audio_s + len(audio) / 16000, files + 1
    return files, audio_s, time.perf_counter() - start


def run_tool(source: str, target: str, n_jobs: int) -> tuple:
    """Run extract_features.py; returns (its own processing seconds, wall seconds incl. start)."""
    start = time.perf_counter()
    tool = os.path.join('tools', 'extract_features.py')
    result = subprocess.run([sys.executable, tool, '--wav_dir', source, '--feat_dir', target,
                             '--dtype', 'float64', '--jobs', str(n_jobs), '--progress', 'false'],
                            cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise cli.SetupError(f'extract_features.py failed: {result.stderr.strip()}')
    own = re.search(r'failed; ([0-9.]+) s,', result.stdout)
    return float(own.group(1)), wall


def max_difference(dir_a: str, dir_b: str) -> float:
    """Largest absolute difference between the features of the same files in two trees."""
    worst = 0.0
    for folder, _, files in os.walk(dir_a):
        for name in files:
            a = load_pickle(os.path.join(folder, name))['feat']
            b = load_pickle(os.path.join(dir_b, os.path.relpath(folder, dir_a), name))['feat']
            worst = max(worst, float(np.abs(a - b).max()) if a.shape == b.shape else np.inf)
    return worst


def report(name: str, files: int, audio_s: float, wall_s: float) -> None:
    print(f'  {name:<38s} {wall_s:7.2f} s  {files / wall_s:8.1f} files/s  '
          f'{audio_s / wall_s:7.0f}x real time')


def bench(label: str, source: str, root: str) -> None:
    out = lambda name: os.path.join(root, f'{label}_{name}')  # noqa: E731
    files, audio_s, base_s = baseline(source, out('baseline'))
    print(f'{label}: {files} files, {audio_s:.0f} s of audio '
          f'(BLAS threads: {os.environ.get("OPENBLAS_NUM_THREADS", "library default")})')
    report('baseline (1 process, recipe as written)', files, audio_s, base_s)
    for n in sorted({1, jobs}):
        own, wall = run_tool(source, out(f'tool{n}'), n)
        report(f'extract_features.py --jobs {n}', files, audio_s, own)
        report('  same, wall incl. interpreter start-up', files, audio_s, wall)
        diff = max_difference(out('baseline'), out(f'tool{n}'))
        print(f'    max abs difference from the baseline: {diff:.1e}')
        if not diff < 1e-9:
            raise cli.SetupError(f'{label}: tool output differs from the baseline by {diff}')


def main() -> None:
    cli.override_settings(globals(), doc=__doc__)
    root = work_dir or tempfile.mkdtemp(prefix='bench_extract_')
    try:
        if os.path.isdir(tutorial_wavs):
            bench('tutorial test_wavs', tutorial_wavs, root)
        else:
            print(f'(tutorial wavs not found at {tutorial_wavs}: skipped)')
        bench(f'generated {n_files} x {seconds:g} s', generate_set(root, n_files, seconds), root)
    finally:
        if not work_dir:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == '__main__':
    cli.run(main)
