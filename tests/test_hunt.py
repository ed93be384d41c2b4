"""Issue 27's hunt: bad inputs and faults a new user or a careless operator meets, each one
line (or the right answer), never a traceback, a lost file or a silent wrong answer."""
import os
import subprocess
import sys

import pytest

from conftest import ROOT, run_script
from configure import SetupError
from dvector import cli

FOLDER_SETTINGS = [('identification.py', 'embedding_dir'), ('verification.py', 'embedding_dir'),
                   ('enroll.py', 'embedding_dir'), ('identification.py', 'log_dir'),
                   ('enroll.py', 'test_dir'), ('evaluate.py', 'log_dir'),
                   ('evaluate.py', 'test_dir'), ('evaluate.py', 'embedding_dir'),
                   ('evaluate.py', 'test_wav_dir'), ('evaluate.py', 'feat_dir'),
                   ('demo.py', 'files_dir')]


@pytest.mark.parametrize('script,setting', FOLDER_SETTINGS)
def test_a_file_given_for_a_folder_is_named_a_file(tmp_path, script, setting):
    """--embedding_dir <a file> said 'enrollment folder not found' (and --log_dir <a
    checkpoint> 'no checkpoint files'): the setting is refused as a file, before any work."""
    a_file = tmp_path / 'a file.pth'
    a_file.write_bytes(b'x')
    rules = load_rules(script)
    with pytest.raises(SetupError, match=f'--{setting} .*: is a file, not a folder'):
        cli.check_settings({setting: str(a_file)}, rules)
    cli.check_settings({setting: str(tmp_path / 'not yet')}, rules)  # a new folder is fine


def load_rules(script: str) -> dict:
    """A script's SETTING_RULES, read without running its main()."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(script[:-3] + '_rules', os.path.join(ROOT,
                                                                                       script))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SETTING_RULES


def test_a_file_for_embedding_dir_is_one_line_from_the_script(tmp_path):
    a_file = tmp_path / 'enrollments'
    a_file.write_text('')
    result = run_script('identification.py', '--embedding_dir', str(a_file))
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert result.stderr.strip() == (f'error: --embedding_dir {a_file}: is a file, not a folder '
                                     '(give the folder that holds it)')


def test_a_closed_stdout_ends_a_script_quietly():
    """python enroll.py --help | head -3 ended in a BrokenPipeError traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the script writes (head has exited)
    result = subprocess.run([sys.executable, 'enroll.py', '--help'], cwd=ROOT, stdout=write_end,
                            stderr=subprocess.PIPE, text=True, timeout=120)
    os.close(write_end)
    assert result.stderr == '' and result.returncode == 141


def test_run_turns_a_broken_pipe_into_a_quiet_exit(capsys):
    def main():
        raise BrokenPipeError(32, 'Broken pipe')
    with pytest.raises(SystemExit) as stop:
        cli.run(main)
    assert stop.value.code == 141 and capsys.readouterr().err == ''
