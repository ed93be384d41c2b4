"""dvector.Encoder (dvector/encoder.py): one object for programs, from files or arrays, its
notes on stderr, usable from any folder; embed_wav and score_wavs give the same answers."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy.io import wavfile
from scipy.signal import resample_poly

import dvector
from conftest import ROOT
from test_recordings import voice, write_wav


@pytest.fixture(scope='module')
def encoder(trained_run):
    return dvector.Encoder(model_dir=trained_run[0], device='cpu')


def test_setup_error_is_a_value_error_importable_from_dvector():
    from configure import SetupError
    assert dvector.SetupError is SetupError and issubclass(SetupError, ValueError)


ENROLL = os.path.join(ROOT, 'test_wavs', 'demo_f45', 'enroll.wav')  # 15 s, 16 kHz
TEST = os.path.join(ROOT, 'test_wavs', 'demo_m41', 'test.wav')


def test_a_file_and_its_samples_give_one_d_vector(tmp_path, encoder, trained_run):
    rate, pcm = wavfile.read(ENROLL)
    from_file = encoder.embed(ENROLL)
    assert from_file.shape == (128,) and from_file.device.type == 'cpu'
    assert float(from_file.norm()) == pytest.approx(1, abs=1e-4)
    assert torch.allclose(encoder.embed(pcm, rate), from_file, atol=1e-5)
    assert torch.allclose(encoder.embed(np.stack([pcm, pcm], axis=1), rate), from_file,
                          atol=1e-5)  # stereo
    fast = resample_poly(pcm / 32768, 441, 160).astype(np.float32)  # the same at 44.1 kHz
    assert float(encoder.embed(fast, 44100) @ from_file) > 0.99
    assert torch.allclose(dvector.embed_wav(ENROLL, log_dir=trained_run[0]), from_file,
                          atol=1e-5)
    plain = dvector.Encoder(model_dir=trained_run[0], device='cpu', vad=False)
    tone = voice(2, 150)
    assert torch.allclose(plain.embed(tone, 16000),
                          plain.embed(write_wav(tmp_path / 't.wav', tone)), atol=1e-5)
    # the silences were kept: not the d-vector of the speech alone (the tiny test model's
    # cosine between the two is 0.999993, too close to 1 for a bound on it to hold)
    assert not torch.allclose(plain.embed(ENROLL), from_file, atol=1e-5)


def test_score_is_score_wavs_with_the_encoders_model(tmp_path, encoder, trained_run):
    result = encoder.score(ENROLL, TEST)
    assert result == dvector.score_wavs(ENROLL, TEST, log_dir=trained_run[0])
    assert result.score == pytest.approx(float(encoder.embed(ENROLL) @ encoder.embed(TEST)),
                                         abs=1e-5)
    assert result.same_speaker == (result.score > result.threshold) and result.decided_on
    enroll_copy = shutil.copy(ENROLL, tmp_path / 'enroll_copy.wav')  # one file twice is refused
    assert encoder.score(ENROLL, str(enroll_copy), thres=0.5).same_speaker


def test_bad_input_is_one_line(tmp_path, encoder):
    with pytest.raises(dvector.SetupError, match='sample_rate=None: give the rate'):
        encoder.embed(voice(2, 150))
    with pytest.raises(ValueError, match=r'expected a \(samples,\) or \(samples, channels\)'):
        encoder.embed(np.zeros((2, 2, 2)), 16000)
    with pytest.raises(ValueError, match='not all finite'):
        encoder.embed(np.full(32000, np.nan), 16000)
    with pytest.raises(ValueError, match='no speech found in the array given'):
        encoder.embed(np.zeros(32000, dtype=np.float32), 16000)
    with pytest.raises(ValueError, match='nowhere.wav: cannot read the file'):
        encoder.embed(str(tmp_path / 'nowhere.wav'))
    with pytest.raises(ValueError, match='no checkpoint_<epoch>.pth'):
        dvector.Encoder(model_dir=str(tmp_path))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device='cuda': no CUDA device here"):
            dvector.Encoder(model_dir=str(tmp_path), device='cuda')


def test_from_any_folder_with_the_notes_on_stderr(tmp_path):
    """The shipped real-speech model from another folder; resampling's notes (for the file
    through embed_wav, for samples through the Encoder) are not on stdout."""
    rate, pcm = wavfile.read(ENROLL)
    path = write_wav(tmp_path / 'a.wav', resample_poly(pcm, 441, 320).astype(np.int16), 22050)
    code = ('import dvector, numpy as np; a = dvector.embed_wav(%r); '
            'encoder = dvector.Encoder(device="cpu"); '
            'b = encoder.embed(np.repeat(np.load(%r), 2), 32000); '
            'print(tuple(a.shape), float(a @ b) > 0.95, encoder.score(%r, %r).same_speaker)'
            % (path, str(tmp_path / 'pcm.npy'), path, ENROLL))
    np.save(tmp_path / 'pcm.npy', pcm)
    result = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120, env={**os.environ, 'PYTHONPATH': ROOT})
    assert result.returncode == 0, result.stderr
    assert result.stdout == '(256,) True True\n'
    assert 'resampling 22050 Hz' in result.stderr and 'resampling 32000 Hz' in result.stderr
