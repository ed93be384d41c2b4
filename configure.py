"""Shared settings of the tutorial (read by the scripts as ``c.X``).

Paths are relative to the folder you run the scripts from (the repository root), so a fresh
clone runs as it is. To use the full tutorial DB or your own data, either edit these paths or
give the script-level overrides, e.g.
``python train.py --train_feat_dir data/tutorial_db/feat_logfbank_nfilt40/train``.
"""

# Wav folder of the test speakers: <folder>/<speaker>/{enroll,test}.wav
TEST_WAV_DIR = 'test_wavs'

# Feature folders: <folder>/<speaker>/<utterance>.p (pickled dict {'feat', 'label'})
TRAIN_FEAT_DIR = 'feat_logfbank_nfilt40/train'
TEST_FEAT_DIR = 'feat_logfbank_nfilt40/test'

# Training crop length in frames (10 ms each): a batch is (B, 1, 40, NUM_WIN_SIZE)
NUM_WIN_SIZE = 100

# Feature recipe (dvector/features.py), the one place it is defined: log mel filterbank
# energies, mean-normalised per utterance
USE_LOGSCALE = True   # 20*log10 of the filterbank energies
USE_DELTA = False     # append delta and delta-delta coefficients (3x the bands)
USE_SCALE = False     # also divide each band by its standard deviation
SAMPLE_RATE = 16000   # Hz; audio at other rates is resampled to this
FILTER_BANK = 40      # number of mel bands
WINDOW_SECONDS = 0.025  # analysis window (25 ms)
HOP_SECONDS = 0.01      # hop between frames (10 ms): 100 frames a second

# Silence trim applied when a feature file is read: frames dropped at each end (0.5 s)
TRIM_FRAMES = 50


class SetupError(ValueError):
    """Bad input or a bad setting (a ValueError, so programs may catch either; importable as
    ``dvector.SetupError``). Every script prints it as one ``error:`` line and exits with
    status 1 (dvector/cli.py). Defined here, at the bottom of the house, so that the tutorial's
    modules (DB_wav_reader, SR_Dataset, model/) and the dvector package can all raise it. The
    message is kept on one line whatever it quotes (an exception's text may span several)."""

    def __init__(self, message: str):
        super().__init__(' '.join(str(message).split()))
