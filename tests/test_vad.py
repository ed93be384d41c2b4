"""The speech detector (dvector/vad.py, Silero VAD) on espeak-ng speech and sox-made non-speech;
the scripts refuse recordings without speech."""
import os
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest
from scipy.io import wavfile
from scipy.signal import resample_poly

from configure import SetupError
from conftest import ROOT, run_script
from DB_wav_reader import read_audio
from dvector.vad import MIN_ENROLL_SECONDS, PAD_SECONDS, keep_speech, silero_model, speech_segments

RATE = 16000
HAVE_TOOLS = shutil.which('espeak-ng') and shutil.which('sox')
needs_tools = pytest.mark.skipif(not HAVE_TOOLS, reason='needs espeak-ng and sox '
                                 '(apt-get install espeak-ng sox)')
SENTENCE = 'The quick brown fox jumps over the lazy dog, and then it runs all the way home.'
NON_SPEECH = {  # sox arguments after the output file: 5 s of each kind
    'white.wav': ['synth', '5', 'whitenoise', 'vol', '0.01'],
    'pink.wav': ['synth', '5', 'pinknoise', 'vol', '0.3'],
    'brown.wav': ['synth', '5', 'brownnoise', 'vol', '0.3'],
    'dithered.wav': ['trim', '0', '5'],
    'tone.wav': ['synth', '5', 'sine', '440', 'vol', '0.3'],
    'music.wav': ['synth', '5', 'pluck', 'C3', 'pluck', 'E3', 'pluck', 'G3', 'remix', '-',
                  'tremolo', '2', '90'],
}


def espeak(folder, text: str = SENTENCE, voice: str = 'en', pad: float = 1.0) -> np.ndarray:
    """An espeak-ng clip at 16 kHz (peak 0.5) with ``pad`` seconds of silence on each side."""
    raw = os.path.join(str(folder), f'raw_{voice}.wav')
    subprocess.run(['espeak-ng', '-v', voice, '-w', raw, text], check=True)
    clip = read_audio(raw, RATE)
    gap = np.zeros(int(pad * RATE), dtype=np.float32)
    return np.concatenate([gap, 0.5 * clip / np.abs(clip).max(), gap])


def sox_file(folder, name: str, args: list) -> str:
    path = os.path.join(str(folder), name)
    subprocess.run(['sox', '-R', '-V1', '-n', '-r', str(RATE), '-b', '16', path] + args,
                   check=True)
    return path


@pytest.fixture(scope='module')
def speech(tmp_path_factory):
    """(clip with 1 s of silence each side, its length without the silence) in seconds."""
    audio = espeak(tmp_path_factory.mktemp('speech'))
    return audio, len(audio) / RATE - 2.0


@needs_tools
def test_silence_around_speech_is_cut(speech):
    audio, spoken = speech
    kept = keep_speech(audio, RATE, 'me.wav')
    # espeak's own pauses between words may be cut; never more than a pad each side is added
    assert 0.8 * spoken <= len(kept) / RATE <= spoken + 2 * PAD_SECONDS + 0.05
    longer = np.concatenate([audio, np.zeros(3 * RATE, np.float32), audio])
    assert len(keep_speech(longer, RATE)) == pytest.approx(2 * len(kept), rel=0.02)


@needs_tools
def test_every_kind_of_non_speech_is_no_speech_found(tmp_path):
    files = [sox_file(tmp_path, name, args) for name, args in NON_SPEECH.items()]
    wavfile.write(str(tmp_path / 'zeros.wav'), RATE, np.zeros(5 * RATE, np.int16))
    for path in files + [str(tmp_path / 'zeros.wav')]:
        with pytest.raises(SetupError, match=f'^no speech found in {path} '):
            keep_speech(read_audio(path, RATE), RATE, path)


@needs_tools
def test_speech_in_noise_at_any_rate_is_found(speech, tmp_path):
    audio, spoken = speech
    noise = read_audio(sox_file(tmp_path, 'n.wav', ['synth', str(len(audio) / RATE + 0.1),
                                                    'pinknoise']), RATE)[:len(audio)]
    power = np.mean(audio[RATE:-RATE] ** 2)
    noisy = audio + noise * np.sqrt(power / np.mean(noise ** 2) / 10)  # 10 dB SNR
    assert len(keep_speech(noisy, RATE)) / RATE >= 0.8 * spoken
    for rate in (8000, 44100):
        resampled = resample_poly(audio, rate, RATE).astype(np.float32)
        assert len(keep_speech(resampled, rate)) / rate == pytest.approx(
            len(keep_speech(audio, RATE)) / RATE, abs=0.15)


@needs_tools
def test_too_little_speech_names_the_file_the_seconds_and_the_minimum(tmp_path):
    short = espeak(tmp_path, 'Hello there.')
    with pytest.raises(SetupError, match=r'^me\.wav: only \d\.\d\d s of speech found \(of '
                                         r'\d\.\d\d s\); at least 3 s is needed'):
        keep_speech(short, RATE, 'me.wav', MIN_ENROLL_SECONDS)
    assert len(keep_speech(short, RATE, 'me.wav')) > 0  # enough for a test (with a warning)


@needs_tools
def test_each_thread_has_its_own_model_and_the_same_answer(speech):
    audio = speech[0]
    alone = speech_segments(audio, RATE)
    found, models = [None] * 3, [None] * 3

    def detect(i):
        models[i] = silero_model()
        found[i] = speech_segments(audio, RATE)
    threads = [threading.Thread(target=detect, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert found == [alone] * 3
    assert len({id(m) for m in models}) == 3


def test_torchs_thread_count_is_left_as_it_was():
    code = (f'import sys; sys.path.insert(0, {ROOT!r}); import numpy as np, torch; '
            'torch.set_num_threads(3); from dvector.vad import speech_segments; '
            'speech_segments(np.zeros(16000, np.float32), 16000); '
            'print(torch.get_num_threads())')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '3'  # importing silero_vad alone would leave 1


@needs_tools
def test_the_scripts_refuse_recordings_without_speech(speech, tmp_path):
    noise = sox_file(tmp_path, 'noise.wav', ['synth', '10', 'whitenoise', 'vol', '0.01'])
    dithered = sox_file(tmp_path, 'silence.wav', ['trim', '0', '10'])
    emb = str(tmp_path / 'emb')
    result = run_script('enroll.py', '--enroll_wav', noise, '--embedding_dir', emb)
    assert result.returncode == 1 and not os.path.exists(emb)
    assert result.stderr == (f'error: no speech found in {noise} (10.00 s of audio: noise, '
                             'music or silence); record again, speaking close to the '
                             'microphone\n')
    me = str(tmp_path / 'me.wav')
    wavfile.write(me, RATE, speech[0])
    result = run_script('verification.py', '--enroll_wav', me, '--test_wav', dithered)
    assert result.returncode == 1
    assert result.stderr.startswith(f'error: no speech found in {dithered} (10.00 s')


def test_the_speech_detector_leaves_no_telemetry_behind(tmp_path):
    """onnxruntime (under Silero) keeps a device id and a queue of telemetry events under
    ~/.cache on Linux unless told not to before it starts: the project says telemetry off."""
    env = {k: v for k, v in os.environ.items() if k != 'ORT_DISABLE_TELEMETRY'}
    env['HOME'] = str(tmp_path)
    code = ('import numpy as np; from dvector import vad; '
            'vad.speech_probabilities(np.zeros(16000, dtype=np.float32))')
    result = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert not [p for p in tmp_path.rglob('*') if p.is_file()], 'files written under HOME'
