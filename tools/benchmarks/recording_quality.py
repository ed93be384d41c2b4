"""What narrowband, clipped and quiet recordings do to the real-speech model's scores, and
which of them dvector/quality.py warns about.

    python tools/benchmarks/recording_quality.py
    python tools/benchmarks/recording_quality.py --wav_dir data/tutorial_db/test_wavs

Protocol: the tutorial's test speakers (<wav_dir>/<speaker>/{enroll,test}.wav, 10 speakers).
Each recording is made again with sox in the versions below (into a temporary folder) and
scored (score_wavs, cosine) against the other side's 16 kHz original: every test version
against every speaker's enroll.wav (10 genuine, 90 impostor pairs) and every enroll version
against every test.wav (10 + 90 more). Prints, per version, the mean genuine and impostor
scores, the genuine pairs rejected and impostor pairs accepted at the model's stored
threshold, the recordings refused for too little speech (not scored), and how many of the 20
recordings get each warning.
"""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

from configure import SetupError  # noqa: E402
from dvector import cli  # noqa: E402
from dvector.recordings import REAL_MODEL_PATH, cached_model, embed_wav, wav_quality  # noqa: E402
from dvector.threshold import choose_threshold  # noqa: E402

# ---- settings ----
wav_dir = os.path.join(REPO, 'data', 'tutorial_db', 'test_wavs')  # <speaker>/{enroll,test}.wav
log_dir = REAL_MODEL_PATH    # the model scored (the shipped real-speech model)
work_dir = ''                # where the versions are written; '' = a temporary folder, removed
SETTING_RULES = {'wav_dir': cli.NAME, 'log_dir': cli.NAME, 'work_dir': cli.TEXT}

FLOAT = ['-e', 'floating-point', '-b', '32']   # no clipping, no rounding
VERSIONS = {  # name: (sox output options, sox effects); the input is the 16 kHz original
    'original (16 kHz)': None,
    '8 kHz 8-bit': (['-r', '8000', '-b', '8'], []),
    '8 kHz 16-bit': (['-r', '8000', '-b', '16'], []),
    'louder +5 dB (float)': (FLOAT, ['gain', '5']),
    'louder +10 dB (float)': (FLOAT, ['gain', '10']),
    'louder +20 dB (float)': (FLOAT, ['gain', '20']),
    'quieter -5 dB (float)': (FLOAT, ['gain', '-5']),
    'quieter -10 dB (float)': (FLOAT, ['gain', '-10']),
    'quieter -20 dB (float)': (FLOAT, ['gain', '-20']),
    'clipped (+30 dB, 16-bit)': (['-b', '16'], ['gain', '30']),
    'clipped (+40 dB, 16-bit)': (['-b', '16'], ['gain', '40']),
    'quiet (-20 dB, 16-bit)': (['-b', '16'], ['gain', '-20']),
    'quiet (-30 dB, 16-bit)': (['-b', '16'], ['gain', '-30']),
}
WARNINGS = {'short': 'of speech', 'narrowband': 'narrowband', 'clipped': 'clipped',
            'quiet': 'very quiet'}


def make_version(source: str, target: str, recipe) -> str:
    """``source`` remade by sox (``recipe``: output options, effects) as ``target``; the
    original when ``recipe`` is None. Dither is repeatable (-R)."""
    if recipe is None:
        return source
    options, effects = recipe
    subprocess.run(['sox', '-R', '-V1', source] + options + [target] + effects, check=True)
    return target


def version_row(name: str, originals: dict, versions: dict, model_dir: str) -> str:
    """One table row: scores of the ``versions`` ({(speaker, side): path}) against the
    ``originals`` ({(speaker, side): (E,) d-vector})."""
    threshold = choose_threshold(0, cached_model(model_dir)[1])[0]
    genuine, impostor, counts, refused = [], [], dict.fromkeys(WARNINGS, 0), 0
    for (spk, side), path in versions.items():
        other = 'test' if side == 'enroll' else 'enroll'
        lines = wav_quality(path).warnings
        for key, text in WARNINGS.items():
            counts[key] += any(text in line for line in lines)
        try:
            vector = embed_wav(path, model_dir)
        except SetupError:  # too little speech found to score it
            refused += 1
            continue
        for (spk_b, side_b), original in originals.items():
            if side_b == other:
                score = float(vector @ original)
                (genuine if spk_b == spk else impostor).append(score)
    genuine, impostor = np.array(genuine), np.array(impostor)
    warned = ' / '.join(str(counts[k]) for k in WARNINGS)
    return (f'| {name} | {genuine.mean():.3f} | {impostor.mean():.3f} | '
            f'{(genuine <= threshold).sum()} of {len(genuine)} | '
            f'{(impostor > threshold).sum()} of {len(impostor)} | {refused} | {warned} |')


def main() -> None:
    cli.override_settings(globals(), doc=__doc__)
    folder = work_dir or tempfile.mkdtemp(prefix='recording_quality_')
    os.makedirs(folder, exist_ok=True)
    try:
        speakers = sorted(d for d in os.listdir(wav_dir)
                          if os.path.isdir(os.path.join(wav_dir, d)))
        threshold = choose_threshold(0, cached_model(log_dir)[1])[0]
        print(f'{len(speakers)} speakers, threshold {threshold:.4f} (the model\'s own)')
        print('| version | mean genuine score | mean impostor score | genuine rejected | '
              'impostors accepted | refused (under 0.5 s of speech found) | '
              'warned: short / narrowband / clipped / quiet (of 20) |')
        print('|---|---|---|---|---|---|---|')
        originals = {(spk, side): embed_wav(os.path.join(wav_dir, spk, side + '.wav'), log_dir)
                     for spk in speakers for side in ('enroll', 'test')}
        for index, (name, options) in enumerate(VERSIONS.items()):
            versions = {(spk, side): make_version(
                os.path.join(wav_dir, spk, side + '.wav'),
                os.path.join(folder, f'{spk}_{side}_{index}.wav'), options)
                for spk in speakers for side in ('enroll', 'test')}
            print(version_row(name, originals, versions, log_dir), flush=True)
    finally:
        if not work_dir:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == '__main__':
    cli.run(main)
