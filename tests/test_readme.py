"""The commands of README.md run as written, on a copy of the repository, so the docs cannot
drift from the code; README.ko.md's commands are README.md's; every command in docs/ names a
script that exists and settings it has."""
import ast
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

# commands that need what a test cannot have: the network, the 3 GB DB, espeak-ng, a
# microphone, itself; and "Your own voice", which tests/test_own_voice.py runs with recordings
SKIP = ('pip install', 'git ', 'python -m pytest', 'torchrun', 'data/tutorial_db',
        'tools/make_demo_db.py', 'tools/download_tutorial_db.py', 'arecord ', '_wav ',
        'demo.py')  # demo.py serves its page until stopped: tests/test_demo_browser.py runs it
# training in a test: one epoch on 12 of the demo DB's training speakers, 8 utterances each
SMALL_TRAIN_DIR = 'small_train'
SHORT_TRAINING = ['--n_epochs', '1', '--train_feat_dir', SMALL_TRAIN_DIR]


def commands(path: str) -> list:
    """The shell commands of a Markdown file: lines of ```bash blocks and indented lines that
    start with 'python', split at '&&'."""
    with open(path, encoding='utf-8') as f:
        text = f.read()
    lines = []
    for block in re.findall(r'```bash\n(.*?)```', text, flags=re.S):
        lines += block.splitlines()
    lines += [line.strip() for line in text.splitlines() if line.startswith('    python ')]
    found = []
    for line in lines:
        line = line.split('#')[0].strip()
        found += [part.strip() for part in line.split('&&') if part.strip()]
    return found


def inline_commands(path: str) -> list:
    """Commands quoted inline (`python ...`) in a Markdown file."""
    with open(path, encoding='utf-8') as f:
        text = re.sub(r'```.*?```', ' ', f.read(), flags=re.S)  # not the fenced blocks
    return [c for c in re.findall(r'`(python [^`]+)`', text.replace('\n', ' '))]


@pytest.fixture(scope='module')
def repo_copy(tmp_path_factory):
    """The repository's files (not its history or caches) in a temporary folder."""
    dest = tmp_path_factory.mktemp('clone') / 'repo'
    shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(
        '.git', '__pycache__', '.pytest_cache', 'runs', 'data', '*.pyc',
        '.hypothesis', '*.tmp', '.*.lock'))  # what tests running beside this one may write
    train_dir = dest / 'feat_logfbank_nfilt40' / 'train'
    for speaker in sorted(os.listdir(train_dir))[:12]:
        os.makedirs(dest / SMALL_TRAIN_DIR / speaker)
        for name in sorted(os.listdir(train_dir / speaker))[:8]:
            os.symlink(train_dir / speaker / name, dest / SMALL_TRAIN_DIR / speaker / name)
    return dest


def shortened(args: list) -> list:
    """A train.py command with SHORT_TRAINING's settings in place of its own (a setting given
    twice is refused)."""
    kept, i = [], 0
    while i < len(args):
        if args[i] in SHORT_TRAINING[::2]:
            i += 2
            continue
        kept.append(args[i])
        i += 1
    return kept + SHORT_TRAINING


def test_readme_commands_run_as_written(repo_copy):
    ran = []
    for command in commands(os.path.join(ROOT, 'README.md')):
        if any(skip in command for skip in SKIP):
            continue
        args = shlex.split(command)
        assert args[0] == 'python', command
        if args[1] == 'train.py':
            args = shortened(args)
        result = subprocess.run([sys.executable, *args[1:]], cwd=repo_copy, capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 0, f'{command}\n{result.stdout[-2000:]}{result.stderr[-2000:]}'
        ran.append(command)
    assert any(c.startswith('python train.py') for c in ran) and len(ran) >= 10, ran


def script_settings(script: str) -> set:
    """The settings a script accepts: its module-level lowercase assignments (what
    dvector.cli.script_settings finds at run time), read without running it."""
    with open(os.path.join(ROOT, script), encoding='utf-8') as f:
        tree = ast.parse(f.read())
    return {target.id for node in tree.body if isinstance(node, ast.Assign)
            for target in node.targets
            if isinstance(target, ast.Name) and target.id.islower()
            and not target.id.startswith('_')}


def check_command(command: str, known: dict) -> None:
    """The script exists; its recipe file exists; every --flag is one of its settings."""
    args = shlex.split(command.replace('[', '').replace(']', ''))
    script = args[1]
    if script == '-m' or not script.endswith('.py'):
        return
    assert os.path.isfile(os.path.join(ROOT, script)), command
    if script not in known:
        known[script] = script_settings(script)
    for arg in args[2:]:
        if arg.startswith('recipes/') and 'RECIPE' not in arg:
            assert os.path.isfile(os.path.join(ROOT, arg)), command
        if arg.startswith('--'):
            assert arg[2:].split('=')[0] in known[script], f'{arg} in: {command}'


def test_every_documented_command_names_real_scripts_and_settings():
    known = {}
    docs = ['README.md', 'README.ko.md'] + [os.path.join('docs', f) for f in
                                            os.listdir(os.path.join(ROOT, 'docs'))
                                            if f.endswith('.md')]
    checked = 0
    for doc in docs:
        path = os.path.join(ROOT, doc)
        for command in set(commands(path) + inline_commands(path)):
            if command.startswith('python ') and not command.startswith('python -m pytest'):
                check_command(command, known)
                checked += 1
    assert checked > 30


def test_the_korean_readme_uses_the_english_readmes_commands():
    english = set(commands(os.path.join(ROOT, 'README.md')))
    korean = commands(os.path.join(ROOT, 'README.ko.md'))
    assert korean and set(korean) <= english, set(korean) - english


def test_the_readmes_test_command_is_the_one_ci_runs():
    """README's and README.ko.md's test command are .ci/run's (the interpreter's name aside)."""
    with open(os.path.join(ROOT, '.ci', 'run'), encoding='utf-8') as f:
        ci = [line.split()[1:] for line in f if ' -m pytest ' in line]
    for readme in ('README.md', 'README.ko.md'):
        documented = [c.split()[1:] for c in commands(os.path.join(ROOT, readme))
                      if ' -m pytest ' in c]
        assert documented == ci, readme
