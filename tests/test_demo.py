"""demo.py's handlers (what the page's buttons call) on espeak-ng clips with the real-speech
model: enroll, identify, verify, compare, the voice map, and bad input giving one message on the
page with nothing lost. The page in a browser: tests/test_demo_browser.py."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from scipy.io import wavfile

import demo
from conftest import ROOT

REAL_MODEL = os.path.join(ROOT, 'model_real')
pytestmark = pytest.mark.skipif(
    not shutil.which('espeak-ng') or not shutil.which('sox') or not os.path.isdir(REAL_MODEL),
    reason='needs espeak-ng and sox (apt-get install espeak-ng sox) and model_real/')

CLIPS = {  # name: (voice, text)
    'alice_1': ('en-us+f3', 'The quick brown fox jumps over the lazy dog on the hills.'),
    'alice_2': ('en-us+f3', 'Please call Stella and ask her to bring these things with her.'),
    'alice_3': ('en-us+f3', 'Six spoons of fresh snow peas and five thick slabs of cheese.'),
    'bob_1': ('en-gb+m3', 'We also need a small plastic snake and a big toy frog for the kids.'),
    'bob_2': ('en-gb+m3', 'She can scoop these things into three red bags, and we will go.'),
    'short': ('en-us+f3', 'Hi there.'),  # cut to its first 0.4 s of sound
}


def speak(voice: str, text: str, path: str) -> str:
    subprocess.run(['espeak-ng', '-v', voice, '-w', path, text], check=True)
    return path


def espeak_clips(folder) -> dict:
    """{name: wav path} of CLIPS, and 'silence' (2 s of zeros) and 'bad' (not a wav)."""
    clips = {name: speak(voice, text, os.path.join(folder, name + '.wav'))
             for name, (voice, text) in CLIPS.items()}
    full = clips['short'].replace('.wav', '_full.wav')
    os.rename(clips['short'], full)
    subprocess.run(['sox', full, clips['short'], 'silence', '1', '0.01', '1%', 'trim', '0',
                    '0.4'], check=True)
    clips['alice_8k'] = os.path.join(folder, 'alice_8k.wav')  # as from a phone
    subprocess.run(['sox', clips['alice_3'], '-r', '8000', '-b', '8', clips['alice_8k']],
                   check=True)
    clips['silence'] = os.path.join(folder, 'silence.wav')
    wavfile.write(clips['silence'], 16000, np.zeros(32000, dtype=np.int16))
    clips['bad'] = os.path.join(folder, 'notes.wav')
    with open(clips['bad'], 'w') as f:
        f.write('not audio at all')
    return clips


@pytest.fixture(scope='module')
def clips(tmp_path_factory):
    return espeak_clips(str(tmp_path_factory.mktemp('clips')))


@pytest.fixture
def page(tmp_path, monkeypatch):
    """demo's handlers writing to a fresh enrollment folder of the test's."""
    monkeypatch.setattr(demo, 'embedding_dir', str(tmp_path / 'enrolled'))
    monkeypatch.setattr(demo, 'files_dir', str(tmp_path / 'files'))
    return demo


def folder_bytes(folder: str) -> dict:
    return {f: open(os.path.join(folder, f), 'rb').read() for f in sorted(os.listdir(folder))}


def test_enroll_identify_verify_compare(page, clips):
    message, speakers = page.enroll('alice', clips['alice_1'], [clips['alice_2']], False)
    assert 'Enrolled' in message and '2 clips' in message and speakers == ['alice']
    message, speakers = page.enroll(' bob ', None, [clips['bob_1']], False)
    assert speakers == ['alice', 'bob'] and page.current_speakers() == ['alice', 'bob']

    answer = page.identify(clips['alice_3'])
    assert 'Identified · 식별: **alice**' in answer, answer
    rows = [line for line in answer.splitlines() if line.startswith('| 1 ') or
            line.startswith('| 2 ')]
    assert [row.split('|')[2].strip() for row in rows] == ['alice', 'bob']
    assert 'LLR' in answer and 'Bayes threshold' in answer  # the calibrated decision
    assert 'Quality · 녹음 품질: no warnings' in answer

    genuine, impostor = page.verify('alice', clips['alice_3']), page.verify('bob', clips['alice_3'])
    assert genuine.startswith('### Accept') and impostor.startswith('### Reject'), (genuine,
                                                                                    impostor)
    assert 'times more likely the claimed speaker' in genuine
    assert 'times more likely another speaker' in impostor
    narrow = page.verify('alice', clips['alice_8k'])
    assert 'alice_8k.wav: narrowband audio' in narrow and clips['alice_8k'] not in narrow
    assert page.compare(clips['bob_1'], clips['bob_2']).startswith('### Same speaker')
    assert page.compare(clips['bob_1'], clips['alice_1']).startswith('### Different speakers')


def test_a_stranger_is_none_of_them(page, clips):
    page.enroll('alice', clips['alice_1'], None, False)
    answer = page.identify(clips['bob_2'])
    assert answer.startswith('### None of the enrolled speakers'), answer
    assert '| 1 | alice |' in answer and 'more likely another speaker' in answer


def test_voice_map(page, clips):
    heatmap, where, message = page.see_voices('')
    assert heatmap is None and 'nobody is enrolled' in message
    page.enroll('alice', clips['alice_1'], None, False)
    assert 'enroll a second speaker' in page.see_voices('')[2]
    page.enroll('bob', clips['bob_1'], None, False)
    heatmap, where, message = page.see_voices(clips['alice_3'])
    for path in (heatmap, where):
        with open(path, 'rb') as f:
            assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    assert '2 enrolled speakers' in message and 'star' in message
    found = page.live.voice_map(page.embedding_dir, clips['alice_3'], page.log_dir)
    near = np.linalg.norm(found.points - found.clip_point, axis=1)
    assert found.speakers[int(near.argmin())] == 'alice'  # the clip lies nearest its speaker
    assert found.similarity.shape == (2, 2) and np.allclose(np.diag(found.similarity), 1)


def test_bad_input_is_one_message_and_nothing_lost(page, clips):
    assert 'nobody is enrolled' in page.identify(clips['alice_3'])
    assert 'nobody is enrolled' in page.verify('alice', clips['alice_3'])
    page.enroll('alice', clips['alice_1'], None, False)
    before = folder_bytes(page.embedding_dir)
    cases = {  # what is given -> what the message must say
        ('alice', clips['bob_1'], None, False): 'alice is already enrolled',
        ('bob', clips['silence'], None, False): 'silence.wav',  # no speech found in it
        ('bob', clips['short'], None, False): 'short.wav',      # too little speech
        ('bob', clips['bob_1'], (clips['bad'],), False): 'notes.wav: not a readable WAV file',
        ('bob', None, None, False): 'no clip given',
        ('', clips['bob_1'], None, False): 'no name given',
        ('../bob', clips['bob_1'], None, False): 'a speaker name is a file name',
    }
    for given, expected in cases.items():
        message, speakers = page.enroll(*given)
        assert message.startswith(demo.ERROR) and expected in message, (given, message)
        assert 'speech' in message or not expected.endswith(('silence.wav', 'short.wav'))
        assert len(message.splitlines()) == 1 and page.embedding_dir not in message
        assert speakers == ['alice']
        assert folder_bytes(page.embedding_dir) == before  # nothing written, nothing lost
    assert 'carol is not enrolled; enrolled: alice' in page.verify('carol', clips['alice_3'])
    assert 'no claimed speaker' in page.verify(None, clips['alice_3'])
    assert 'no clip given' in page.identify(None)
    too_short = page.identify(clips['short'])
    assert too_short.startswith(demo.ERROR) and 'short.wav' in too_short, too_short
    assert page.identify_and_keep(clips['short']) == (too_short, '')  # not kept for the map
    assert page.identify_and_keep(clips['alice_3'])[1] == clips['alice_3']
    assert 'notes.wav: not a readable WAV file' in page.compare(clips['bad'], clips['bob_1'])
    message, _ = page.enroll('alice', clips['alice_2'], None, True)  # replacing is asked for
    assert 'Enrolled' in message and folder_bytes(page.embedding_dir) != before


def test_the_scripts_sets_are_refused(monkeypatch, tmp_path, capsys):
    for setting in ('embedding_dir', 'files_dir', 'host', 'port'):
        monkeypatch.setattr(demo, setting, getattr(demo, setting))  # restored after the test
    monkeypatch.setattr(sys, 'argv', ['demo.py', '--embedding_dir', 'enroll_embeddings_real'])
    with pytest.raises(SystemExit) as stop:
        demo.cli.run(demo.main)
    assert stop.value.code == 1
    err = capsys.readouterr().err
    assert 'is a set of the scripts' in err and len(err.splitlines()) == 1
    monkeypatch.setattr(sys, 'argv', ['demo.py', '--port', '0'])
    with pytest.raises(SystemExit):
        demo.cli.run(demo.main)
    assert '--port 0: expected a number from 1 to 65535' in capsys.readouterr().err
    monkeypatch.setattr(sys, 'argv', ['demo.py', '--host', 'foo.invalid', '--embedding_dir',
                                      str(tmp_path / 'e'), '--files_dir', str(tmp_path / 'f')])
    with pytest.raises(SystemExit):
        demo.cli.run(demo.main)
    err = capsys.readouterr().err  # it blamed --port
    assert err.startswith('error: --host foo.invalid: not an address this machine can listen')
    assert len(err.splitlines()) == 1
    (tmp_path / 'f').mkdir()
    (tmp_path / 'f' / 'figures').write_text('mine')  # was a FileExistsError traceback
    (tmp_path / 'u').mkdir()
    (tmp_path / 'u' / 'uploads').write_text('mine')
    for argv, message in ((['--host', '10.255.255.1'], '--host 10.255.255.1: not an address'),
                          (['--host', '::1'], '--host ::1: an IPv6 address'),  # a traceback
                          (['--host', '127.0.0.1'], 'its figures is a file or a link'),
                          (['--files_dir', str(tmp_path / 'u')], 'its uploads is a file')):
        argv = argv if '--files_dir' in argv else argv + ['--files_dir', str(tmp_path / 'f')]
        monkeypatch.setattr(sys, 'argv', ['demo.py', '--embedding_dir', str(tmp_path / 'e'),
                                          *argv])
        with pytest.raises(SystemExit):
            demo.cli.run(demo.main)
        err = capsys.readouterr().err
        assert err.startswith('error: ') and message in err, err
        assert len(err.splitlines()) == 1
    assert (tmp_path / 'f' / 'figures').read_text() == 'mine'
    assert (tmp_path / 'u' / 'uploads').read_text() == 'mine'
