"""Lay out the training set of the held-out-speaker protocol (docs/EVALUATION.md).

    python tools/split_heldout.py --db_dir data/tutorial_db --dest runs/heldout_full
    python tools/split_heldout.py --db_dir data/tutorial_db --dest runs/heldout_slice --every 8

Every training speaker of <db_dir>/feat_logfbank_nfilt40/train that is not listed in
docs/evaluation/heldout_speakers.txt is linked under <dest>/train, and no held-out speaker is:
  * every 1: one link per speaker folder (the full DB: 200 speakers x 100 = 20,000 utterances);
  * every N > 1: a real folder per speaker holding links to the first file of each complete
    group of N files by sorted name (files 0, N, 2N, ...; 100 files and N = 8 give 12:
    2,400 utterances, the slice of docs/RESULTS.md).
Then train on it: python train.py recipes/tutorial.py --train_feat_dir <dest>/train
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository
from configure import SetupError  # noqa: E402
from dvector import cli  # noqa: E402
from dvector.cli import override_settings, run  # noqa: E402
from dvector.features import LEVEL_FILE, level_file_paths, tree_level_db  # noqa: E402
from dvector.fileio import atomic_path, check_writable_dir  # noqa: E402

# ---- settings ---------------------------------------------------------------------------
db_dir = 'data/tutorial_db'          # the tutorial DB (python tools/download_tutorial_db.py)
dest = 'runs/heldout'                # the training set is made under <dest>/train
every = 1                            # 1: every file of each speaker; N > 1: one file in N,
                                     # by sorted name (8: the 12-utterance slice)
all_speakers = False                 # also link the 40 held-out speakers: only for a model
                                     # that is never scored on trials_heldout.txt
# ------------------------------------------------------------------------------------------
SETTING_RULES = {  # the allowed values of each setting, checked before any work
    'db_dir': cli.FOLDER, 'dest': cli.FOLDER, 'every': cli.at_least(1), 'all_speakers': cli.FLAG}

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HELDOUT_LIST = os.path.join(REPO, 'docs', 'evaluation', 'heldout_speakers.txt')
TRAIN_SUBDIR = os.path.join('feat_logfbank_nfilt40', 'train')


def read_heldout(path: str) -> list:
    """The held-out speaker IDs, one a line."""
    if not os.path.isfile(path):
        raise SetupError(f'{path}: the list of held-out speakers is missing')
    with open(path) as f:
        speakers = [line.strip() for line in f if line.strip()]
    if not speakers:
        raise SetupError(f'{path}: the list of held-out speakers is empty')
    return speakers


def feature_files(folder: str) -> list:
    """The speaker's feature files (*.p), sorted by name."""
    return sorted(name for name in os.listdir(folder) if name.endswith('.p'))


def pick(files: list, n: int) -> list:
    """The first file of each complete group of ``n`` sorted files (all of them for n = 1)."""
    return files[:len(files) // n * n:n]


def plan(train_dir: str, heldout: list, n: int) -> dict:
    """{training speaker: files to link}, after every check; nothing is written here."""
    if not os.path.isdir(train_dir):
        raise SetupError(f'{train_dir}: no such folder; get the DB with '
                         f'python tools/download_tutorial_db.py --dest {db_dir}')
    speakers = sorted(d for d in os.listdir(train_dir)
                      if os.path.isdir(os.path.join(train_dir, d)))
    missing = sorted(set(heldout) - set(speakers))
    if missing:
        raise SetupError(f'{train_dir}: {len(missing)} of the {len(heldout)} held-out speakers '
                         f'have no folder (first: {missing[0]}); is it the tutorial DB?')
    held, chosen = set(heldout), {}  # heldout empty: every speaker
    for spk in speakers:
        if spk in held:
            continue
        files = pick(feature_files(os.path.join(train_dir, spk)), n)
        if not files:
            raise SetupError(f'{os.path.join(train_dir, spk)}: fewer than {n} feature files '
                             f'(*.p), so none to link with --every {n}')
        chosen[spk] = files
    if not chosen:
        raise SetupError(f'{train_dir}: no training speakers besides the held-out ones')
    return chosen


def link(chosen: dict, train_dir: str, out_dir: str, n: int) -> int:
    """Make the links under ``out_dir``; returns the number of utterances linked."""
    os.makedirs(out_dir, exist_ok=True)
    for spk, files in chosen.items():
        source = os.path.abspath(os.path.join(train_dir, spk))
        if n == 1:
            os.symlink(source, os.path.join(out_dir, spk), target_is_directory=True)
            continue
        os.makedirs(os.path.join(out_dir, spk))
        for name in files:
            os.symlink(os.path.join(source, name), os.path.join(out_dir, spk, name))
    return sum(len(files) for files in chosen.values())


def carry_level(train_dir: str) -> str:
    """The line to write in LEVEL_FILE beside <dest>/train, where train.py looks for it: the
    DB's speech level file (beside its train/) carried over; '' when the DB has none (the
    tutorial DB's level) or <dest> has it already. One in <dest> that says another level:
    SetupError."""
    level, mine = tree_level_db(train_dir), os.path.join(dest, LEVEL_FILE)
    if os.path.lexists(mine):
        there = tree_level_db(os.path.join(dest, 'train'))
        if there != level:
            raise SetupError(f'{mine}: says {there!r} dB, but the recordings of {db_dir} are at '
                             f'{level!r} dB; remove it or give another --dest')
        return ''
    return f'{level!r}\n' if level_file_paths(train_dir) else ''  # as read, not rounded


def main() -> None:
    override_settings(globals(), doc=__doc__)
    if every < 1:
        raise SetupError(f'--every: must be 1 or more, got {every}')
    out_dir = os.path.join(dest, 'train')
    if os.path.lexists(out_dir) and (not os.path.isdir(out_dir) or os.listdir(out_dir)):
        raise SetupError(f'{out_dir} already exists and is not an empty folder; remove it '
                         'or give another --dest')
    heldout = read_heldout(HELDOUT_LIST)
    train_dir = os.path.join(db_dir, TRAIN_SUBDIR)
    chosen = plan(train_dir, [] if all_speakers else heldout, every)
    check_writable_dir(out_dir, 'dest')
    level_line = carry_level(train_dir)
    try:
        n_files = link(chosen, train_dir, out_dir, every)
    except OSError as err:  # e.g. a file in the way, or no symbolic links on this system
        raise SetupError(f'--dest {dest}: cannot make the links there ({err})') from None
    if level_line:  # the recordings' level, which train.py stores in the model
        with atomic_path(os.path.join(dest, LEVEL_FILE)) as tmp, \
                open(tmp, 'w', encoding='utf-8') as f:
            f.write(level_line)
        print(f'{os.path.join(dest, LEVEL_FILE)}: the DB\'s speech level, {level_line.strip()} dB')
    which = 'all files' if every == 1 else f'one file in {every} by sorted name'
    left_out = 'none left out' if all_speakers else \
        f'the {len(heldout)} held-out speakers are left out'
    print(f'{len(chosen)} training speakers ({which}, {n_files:,} utterances) linked under '
          f'{out_dir}; {left_out}')
    print(f'train with: python train.py recipes/tutorial.py --train_feat_dir {out_dir}')


if __name__ == '__main__':
    run(main)
