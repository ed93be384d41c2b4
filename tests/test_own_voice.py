"""README's "Your own voice", tried as a new user would: two espeak-ng voices recorded at
22.05 kHz in stereo with a second of silence around the speech, then the section's commands as
written (and docs/ADVANCED.md's Python example), with the shipped real-speech model."""
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

HAVE_TOOLS = shutil.which('espeak-ng') and shutil.which('sox')
REAL_MODEL = os.path.join(ROOT, 'model_real')
pytestmark = pytest.mark.skipif(not HAVE_TOOLS or not os.path.isdir(REAL_MODEL),
                                reason='needs espeak-ng and sox (apt-get install espeak-ng sox)')

SENTENCES = {  # (voice, text): two voices, different sentences in every file
    'my_voice/me/1.wav': ('en-us+f3', 'The quick brown fox jumps over the lazy dog while the '
                                      'sun is shining brightly on the hills.'),
    'my_voice/me/2.wav': ('en-us+f3', 'Please call Stella and ask her to bring these things '
                                      'with her from the store on the corner.'),
    'me_again.wav': ('en-us+f3', 'Six spoons of fresh snow peas, five thick slabs of blue '
                                 'cheese, and maybe a snack for her brother Bob.'),
    'friend.wav': ('en-gb+m3', 'We also need a small plastic snake and a big toy frog for the '
                               'kids, she said, and then we can go.'),
}


def section(name: str, doc: str = 'README.md') -> str:
    with open(os.path.join(ROOT, doc), encoding='utf-8') as f:
        text = f.read()
    start = text.index(f'## {name}\n')
    return text[start:text.index('\n## ', start + 1)]


def own_voice_commands() -> list:
    block = re.search(r'```bash\n(.*?)```', section('Your own voice'), flags=re.S).group(1)
    return [line.split('#')[0].strip() for line in block.splitlines() if line.strip()]


def speak(voice: str, text: str, path: str) -> None:
    """espeak-ng at 22.05 kHz, made stereo with a second of silence before and after."""
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    raw = path + '.raw.wav'
    subprocess.run(['espeak-ng', '-v', voice, '-w', raw, text], check=True)
    subprocess.run(['sox', raw, '-c', '2', path, 'pad', '1', '1'], check=True)
    os.remove(raw)


@pytest.fixture(scope='module')
def clone(tmp_path_factory):
    """The repository's code and models, with the four recordings in its root."""
    dest = tmp_path_factory.mktemp('own_voice') / 'repo'
    shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(
        '.git', '__pycache__', '.pytest_cache', 'runs', 'data', '*.pyc', 'tests',
        'feat_logfbank_nfilt40', 'test_wavs', 'docs', 'enroll_embeddings_real', '.hypothesis',
        '*.tmp', '.*.lock'))  # the last three: what tests running beside this one may write
    for rel, (voice, text) in SENTENCES.items():
        speak(voice, text, str(dest / rel))
    return dest


def run(clone, command: str) -> str:
    args = shlex.split(command)
    result = subprocess.run([sys.executable, *args[1:]], cwd=clone, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, f'{command}\n{result.stdout[-2000:]}{result.stderr[-2000:]}'
    return result.stdout


def test_the_recordings_are_what_the_issue_describes(clone):
    out = subprocess.run(['soxi', str(clone / 'me_again.wav')], capture_output=True,
                         text=True).stdout
    assert re.search(r'Channels\s*: 2', out) and re.search(r'Sample Rate\s*: 22050', out)


def test_your_own_voice_commands_as_written(clone):
    commands = own_voice_commands()
    assert len(commands) == 6, commands
    expected = [
        'Aggregates the activation (spk : me, 2 wav files)',
        '2 speakers enrolled in enroll_embeddings_real: friend, me',
        'True speaker : ',  # me_again.wav lies in no speaker folder: no truth printed
        'Claimed speaker : me\nTrue speaker : me_again.wav\n\nResult : Accept',
        'Claimed speaker : me\nTrue speaker : friend.wav\n\nResult : Reject',
        'Claimed speaker : me_again.wav\nTrue speaker : friend.wav\n\nResult : Reject',
    ]
    scores = []
    for command, want in zip(commands, expected):
        out = run(clone, command)
        if command.startswith('python identification.py'):
            assert 'Predicted speaker : me\n' in out and want not in out, out
            assert "Threshold : LLR 0.00, the Bayes threshold of p_target 0.5" in out
        else:
            assert want in out, f'{command}\n{out}'
        if command.startswith('python verification.py'):
            assert re.search(r'LLR : -?\d+\.\d\d \(', out), out
            assert re.search(r'Threshold : -?\d\.\d{4} on the score: LLR 0\.00, the Bayes '
                             r'threshold of p_target 0\.5, c_miss 1, c_fa 1 \(the default\); '
                             r'calibrated on ', out), out
            scores.append(float(re.search(r'Score : (-?\d\.\d{4})', out).group(1)))
    # the other voice is rejected at the model's operating point, the same voice's third file
    # accepted
    assert scores[1] < scores[0] and scores[2] < scores[0]
    assert sorted(os.listdir(clone / 'enroll_embeddings_real')) == [
        'enrolled_with.txt', 'friend.pth', 'me.pth', 'speech_seconds.txt']


def test_the_python_example_as_written(clone):
    code = re.search(r'```python\n(.*?)```', section('From Python', 'docs/ADVANCED.md'),
                     flags=re.S).group(1)
    result = subprocess.run([sys.executable, '-c', code], cwd=clone, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    *_, numbers, meaning = result.stdout.splitlines()
    score, llr, same = numbers.split()
    # the default operating point (p_target 0.5, equal costs): accepted when the LLR is above 0
    assert -1 <= float(score) <= 1 and same == str(float(llr) > 0)
    assert re.fullmatch(r'([\d.,]+|over a million) times more likely (the claimed|another) '
                        r'speaker than .*|about as likely .*', meaning), meaning
