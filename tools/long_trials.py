"""Trials of longer recordings, made from a trial list of short utterances (no audio is read).

    python tools/long_trials.py    # docs/evaluation/trials_heldout.txt -> trials_heldout_long.txt

People enroll with several files of 10-20 s and test with one such file; the held-out trials are
single 2-5 s utterances, and scores rise with length on both sides, so a threshold measured on
them accepts more impostors in use. Here each speaker of the list enrolls with its first
``enroll_files`` utterances (sorted by name) as one recording, and every following group of
``test_files`` utterances is one test recording; each enrollment is scored against each test.
evaluate.py reads an entry 'a.p+b.p+c.p' as those files' features one after another.
"""
import os
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository
from configure import SetupError  # noqa: E402
from dvector import cli  # noqa: E402
from dvector.feature_paths import JOIN, feature_name  # noqa: E402
from dvector.fileio import atomic_path, check_writable_file  # noqa: E402

# ---- settings ---------------------------------------------------------------------------
trials = 'docs/evaluation/trials_heldout.txt'  # the short trials: their files and speakers
out = 'docs/evaluation/trials_heldout_long.txt'  # the long trials are written here
enroll_files = 6                     # utterances joined into each speaker's enrollment
test_files = 3                       # utterances joined into each test recording
replace = False                      # replace an existing out file that holds other trials
# ------------------------------------------------------------------------------------------
SETTING_RULES = {  # the allowed values of each setting, checked before any work
    'trials': cli.NAME, 'out': cli.NAME, 'enroll_files': cli.at_least(1),
    'test_files': cli.at_least(1), 'replace': cli.FLAG}


def speaker_files(path: str) -> dict:
    """{speaker: sorted files} of a trial list (the speaker is the file's folder)."""
    if not os.path.isfile(path):
        raise SetupError(f'--trials {path}: no such trial list')
    files = defaultdict(set)
    with open(path, encoding='utf-8', errors='replace') as f:
        for number, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 3 or JOIN in line:
                raise SetupError(f'{path}, line {number}: expected "label enroll test" of '
                                 'single files')
            for rel in fields[1:]:
                try:  # the speaker as evaluate.py finds it (VoxCeleb's <spk>/<video>/<n>.wav too)
                    files[feature_name(rel)[0]].add(rel)
                except ValueError:
                    raise SetupError(f'{path}, line {number}: {rel} has no speaker folder') \
                        from None
    return {spk: sorted(names) for spk, names in sorted(files.items())}


def long_entries(files: dict) -> tuple:
    """({speaker: enrollment entry}, [(speaker, test entry)]) for the speakers with enough
    files for an enrollment and at least one test."""
    enrolls, tests = {}, []
    for spk, names in files.items():
        rest = names[enroll_files:]
        groups = [rest[i:i + test_files] for i in range(0, len(rest) - test_files + 1,
                                                         test_files)]
        if groups:
            enrolls[spk] = JOIN.join(names[:enroll_files])
            tests += [(spk, JOIN.join(group)) for group in groups]
    left_out = len(files) - len(enrolls)
    if left_out:
        print(f'note: {left_out} speakers have fewer than {enroll_files} + {test_files} files '
              'and are left out')
    if len(enrolls) < 2:
        raise SetupError(f'--trials {trials}: fewer than 2 speakers have {enroll_files} + '
                         f'{test_files} files; lower --enroll_files or --test_files')
    return enrolls, tests


def check_out() -> None:
    """Before any work: ``out`` can be written and is not ``trials`` itself."""
    check_writable_file(out, 'out')
    if os.path.isfile(out) and os.path.isfile(trials) and os.path.samefile(out, trials):
        raise SetupError(f'--out {out}: is the --trials list it is made from; give another file')


def check_replaceable(text: str) -> None:
    """An existing, non-empty ``out`` is replaced only when it already holds ``text`` (made
    again) or with --replace true: it may be another list, or the user's own file."""
    if replace or not os.path.isfile(out) or os.path.getsize(out) == 0:
        return
    with open(out, 'rb') as f:
        same = f.read(len(text.encode()) + 1) == text.encode()
    if not same:
        raise SetupError(f'--out {out}: exists and holds something else (another trial list, '
                         'or a file of yours); it is not replaced: give another file, or '
                         '--replace true')


def main() -> None:
    cli.override_settings(globals(), doc=__doc__)
    check_out()
    enrolls, tests = long_entries(speaker_files(trials))
    lines = [f'{int(spk == test_spk)} {enroll} {test}\n'
             for spk, enroll in enrolls.items() for test_spk, test in tests]
    check_replaceable(''.join(lines))
    with atomic_path(out) as tmp, open(tmp, 'w', encoding='utf-8') as f:
        f.writelines(lines)
    targets = sum(line.startswith('1') for line in lines)
    print(f'{len(lines)} trials ({targets} target) of {len(enrolls)} speakers written to {out}: '
          f'enrollments of {enroll_files} utterances, tests of {test_files}')


if __name__ == '__main__':
    cli.run(main)
