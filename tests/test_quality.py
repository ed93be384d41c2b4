"""Quality measures and warnings of a recording (dvector/quality.py), on espeak-ng speech, and
as score_wavs and the scripts give them."""
import numpy as np
import pytest
from scipy.io import wavfile
from scipy.signal import resample_poly
from test_vad import RATE, espeak, needs_tools, sox_file

from conftest import run_script
from dvector.quality import NARROWBAND_DB, QUIET_DBFS, assess_recording

pytestmark = needs_tools


@pytest.fixture(scope='module')
def clip(tmp_path_factory):
    """An espeak-ng sentence, 16 kHz, peak 0.5, 0.5 s of silence on each side."""
    return espeak(tmp_path_factory.mktemp('quality'), pad=0.5)


def kinds(quality) -> list:
    """Which warnings a quality has, by their wording."""
    words = {'of speech': 'short', 'narrowband': 'narrowband', 'clipped': 'clipped',
             'very quiet': 'quiet', 'no speech': 'none'}
    return sorted(kind for line in quality.warnings for text, kind in words.items()
                  if text in line)


def test_clean_speech_has_no_warning_and_its_seconds(clip):
    quality = assess_recording(clip, RATE, 'me.wav')
    assert quality.warnings == ()
    assert 2.5 < quality.speech_seconds < quality.audio_seconds == pytest.approx(len(clip) / RATE)
    assert quality.high_band_db > NARROWBAND_DB and quality.clipped_share == 0
    assert quality.level_dbfs > QUIET_DBFS


def test_each_fault_earns_its_own_warning_naming_the_file(clip):
    phone = resample_poly(resample_poly(clip, 1, 2), 2, 1)         # through 8 kHz and back
    assert kinds(assess_recording(phone, RATE, 'phone.wav')) == ['narrowband']
    assert kinds(assess_recording(clip[::2], 8000, 'eight.wav')) == ['narrowband']
    loud = np.clip(clip * 10, -1, 1)
    assert kinds(assess_recording(loud, RATE, 'loud.wav')) == ['clipped']
    quiet = clip * 10 ** (-50 / 20)                                  # peak at -56 dB
    quality = assess_recording(quiet, RATE, 'quiet.wav')
    assert kinds(quality) == ['quiet'] and quality.warnings[0].startswith('quiet.wav: ')
    short = assess_recording(clip[:int(1.5 * RATE)], RATE, 'short.wav')
    assert short.warnings == (f'short.wav: {short.speech_seconds:.1f} s of speech (decisions '
                              'below 2 s are unreliable)',)


def test_a_microphones_int16_at_44_1_khz_and_noise(clip, tmp_path):
    pcm = (resample_poly(clip, 441, 160) * 32767).astype(np.int16)   # as a web page gives it
    quality = assess_recording(pcm, 44100, 'mic')
    assert quality.warnings == () and quality.speech_seconds > 2.5
    noise = wavfile.read(sox_file(tmp_path, 'n.wav', ['synth', '5', 'whitenoise', 'vol',
                                                      '0.01']))[1]
    quality = assess_recording(noise, RATE, 'n.wav')
    assert quality.speech_seconds == 0 and quality.warnings == ('n.wav: no speech found',)


def test_score_wavs_and_verification_give_the_warnings(clip, tmp_path):
    from dvector import score_wavs
    enroll, test = str(tmp_path / 'enroll.wav'), str(tmp_path / 'phone.wav')
    wavfile.write(enroll, RATE, clip)
    wavfile.write(test, 8000, (clip[::2] * 32767).astype(np.int16))
    result = score_wavs(enroll, test)
    assert result.quality_a.warnings == () and result.quality_b.narrowband
    assert result.quality_b.speech_seconds > 2.5
    run = run_script('verification.py', '--enroll_wav', enroll, '--test_wav', test)
    assert run.returncode == 0, run.stderr
    assert run.stdout.count('warning: ') == 1
    assert f'warning: {test}: narrowband audio' in run.stdout
