"""tools/long_trials.py: long trials from a short trial list (evaluate.py scoring them is in
test_evaluate.py), and the lists it refuses."""
import os

from conftest import ROOT, run_script


def write_trials(path, rows):
    with open(path, 'w') as f:
        f.writelines(f'{label} {e} {t}\n' for label, e, t in rows)
    return str(path)


def test_the_shipped_long_list_is_the_tools_output_on_the_shipped_short_list(tmp_path):
    out = str(tmp_path / 'long.txt')
    result = run_script('tools/long_trials.py', '--out', out)
    assert result.returncode == 0, result.stderr
    assert '3200 trials (80 target) of 40 speakers' in result.stdout
    shipped = os.path.join(ROOT, 'docs', 'evaluation', 'trials_heldout_long.txt')
    with open(out) as made, open(shipped) as expected:
        assert made.read() == expected.read()


def test_long_trials_refuse_lists_it_cannot_use(tmp_path):
    few = write_trials(tmp_path / 'few.txt', [(1, 'a/1.p', 'a/2.p'), (0, 'a/1.p', 'b/1.p')])
    result = run_script('tools/long_trials.py', '--trials', few, '--out', str(tmp_path / 'o'))
    assert result.returncode == 1 and 'fewer than 2 speakers have 6 + 3 files' in result.stderr
    joined = write_trials(tmp_path / 'joined.txt', [(1, 'a/1.p+a/2.p', 'a/3.p')])
    result = run_script('tools/long_trials.py', '--trials', joined, '--out', str(tmp_path / 'o'))
    assert result.returncode == 1 and 'line 1: expected "label enroll test"' in result.stderr
    assert not os.path.exists(tmp_path / 'o')
    windows = write_trials(tmp_path / 'windows.txt', [(1, 'a\\1.p', 'a\\2.p')])
    result = run_script('tools/long_trials.py', '--trials', windows, '--out', str(tmp_path / 'o'))
    assert 'fewer than 2 speakers' in result.stderr  # read with its speaker, not refused
    no_folder = write_trials(tmp_path / 'flat.txt', [(1, 'a.p', 'b.p')])
    result = run_script('tools/long_trials.py', '--trials', no_folder, '--out', str(tmp_path / 'o'))
    assert result.returncode == 1 and 'line 1: a.p has no speaker folder' in result.stderr
    assert not os.path.exists(tmp_path / 'o')


def test_long_trials_never_replace_their_input_or_a_users_file(tmp_path):
    rows = [(1, f'{s}/{i}.p', f'{s}/{i + 1}.p') for s in 'ab' for i in range(1, 5)]
    short = write_trials(tmp_path / 'short.txt', rows)
    before = open(short).read()
    common = ['tools/long_trials.py', '--trials', short, '--enroll_files', '2', '--test_files', '1']
    result = run_script(*common, '--out', short)
    assert result.returncode == 1 and 'is the --trials list it is made from' in result.stderr
    notes = tmp_path / 'notes.txt'
    notes.write_text('my notes\n')
    other = write_trials(tmp_path / 'other.txt', [(1, 'x/1.p', 'x/2.p')])  # a trial list too
    for path in (str(notes), other):
        result = run_script(*common, '--out', path)
        assert result.returncode == 1 and 'exists and holds something else' in result.stderr
    assert open(short).read() == before and notes.read_text() == 'my notes\n'
    assert open(other).read() == '1 x/1.p x/2.p\n'
    out = str(tmp_path / 'long.txt')
    assert run_script(*common, '--out', out).returncode == 0
    assert run_script(*common, '--out', out).returncode == 0  # its own list: made again
    assert run_script(*common, '--out', other, '--replace', 'true').returncode == 0
    assert open(other).read() == open(out).read()
