"""extract_features.py: the recipe bit for bit, layouts, resuming, bad input, the loader."""
import glob
import os

import numpy as np
import pytest
from python_speech_features import fbank
from scipy.io import wavfile

from conftest import ROOT, TUTORIAL_DB, needs_tutorial_db, run_script, write_24bit
from DB_wav_reader import read_feats_structure
from dvector.feature_paths import feature_name as output_name
from dvector.features import fast_logfbank, logfbank_features
from SR_Dataset import load_pickle, read_MFB

RATE = 16000


def tone(seconds: float, seed: int = 0, rate: int = RATE) -> np.ndarray:
    """Sine plus noise, float32 in [-1, 1]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    audio = 0.3 * np.sin(2 * np.pi * (150 + 50 * seed) * t) + 0.05 * rng.standard_normal(len(t))
    return audio.astype(np.float32)


# ---- the recipe, in process --------------------------------------------------------------

@pytest.mark.parametrize('n_samples', [400, 401, 561, 16000, 23457])
def test_recipe_matches_python_speech_features_directly(n_samples):
    audio = tone(n_samples / RATE, seed=n_samples % 7)[:n_samples]
    energies, _ = fbank(audio, samplerate=RATE, nfilt=40, winlen=0.025)
    logged = 20 * np.log10(np.maximum(energies, 1e-5))
    expected = logged - logged.mean(axis=0)
    assert np.array_equal(logfbank_features(audio), expected)
    assert np.array_equal(fast_logfbank(audio), expected)  # the tool's faster path, bit for bit
    assert expected.shape == (1 + int(np.ceil(max(n_samples - 400, 0) / 160)), 40)


@pytest.mark.parametrize('switches', [
    dict(use_delta=True), dict(use_scale=True), dict(use_logscale=False),
    dict(use_delta=True, use_scale=True), dict(n_bands=24), dict(sample_rate=8000)])
def test_fast_path_equals_recipe_for_every_switch(switches):
    audio = tone(2.0, seed=3)
    expected = logfbank_features(audio, **switches)
    assert np.array_equal(fast_logfbank(audio, **switches), expected)


def test_delta_switch_gives_120_columns():
    feat = fast_logfbank(tone(1.5), use_delta=True)
    assert feat.shape == (149, 120)  # 1.5 s: 1 + ceil((24000 - 400) / 160) frames
    assert np.allclose(feat.mean(axis=0), 0, atol=1e-9)


def test_scale_switch_gives_unit_std():
    feat = fast_logfbank(tone(1.5, seed=1), use_scale=True)
    assert np.allclose(feat.std(axis=0), 1, atol=1e-6)
    assert np.allclose(feat.mean(axis=0), 0, atol=1e-9)


def test_output_names_for_both_layouts():
    assert output_name('spk1/enroll.wav') == ('spk1', os.path.join('spk1', 'enroll.p'))
    assert output_name('id10001/1zcIwhmdeo4/00001.wav') == (
        'id10001', os.path.join('id10001', '1zcIwhmdeo4_00001.p'))
    with pytest.raises(ValueError):
        output_name('loose.wav')


# ---- the tool on the real tutorial wavs ----------------------------------------------------

@needs_tutorial_db()
def test_features_equal_the_shipped_pickles(tmp_path):
    wavs = os.path.join(TUTORIAL_DB, 'test_wavs')
    result = run_script('tools/extract_features.py', '--wav_dir', wavs, '--feat_dir', str(tmp_path),
                        '--dtype', 'float64', '--jobs', '2')
    assert result.returncode == 0, result.stderr
    assert '20 files done, 0 skipped (already there), 0 failed' in result.stdout
    shipped = sorted(glob.glob(os.path.join(TUTORIAL_DB, 'feat_logfbank_nfilt40/test/*/*.p')))
    assert len(shipped) == 20
    for path in shipped:
        ref = load_pickle(path)
        ours = load_pickle(os.path.join(tmp_path, *path.split(os.sep)[-2:]))
        assert ours['label'] == ref['label'] and ours['feat'].dtype == np.float64
        assert ours['feat'].shape == ref['feat'].shape
        assert np.abs(ours['feat'] - ref['feat']).max() < 1e-9, path


# ---- the tool on a generated tree: layouts, formats, bad input, resume -------------------

def make_tree(root: str) -> dict:
    """Tutorial- and VoxCeleb-shaped wavs in every format, plus bad files; returns expectations."""
    def write(rel, rate, data):
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        wavfile.write(path, rate, data)

    good = {}
    for s in range(3):  # VoxCeleb: <speaker>/<video>/<n>.wav, 16-bit
        for v in range(2):
            for n in range(2):
                audio = tone(1.6 + 0.1 * n, seed=s * 4 + v * 2 + n)  # 0.6 s and more trimmed
                write(f'id1000{s}/vid{v}/0000{n}.wav', RATE, (audio * 32767).astype(np.int16))
                good[f'id1000{s}/vid{v}_0000{n}.p'] = f'id1000{s}'
    audio = tone(1.0, seed=9)
    formats = {'u8': ((audio * 127 + 128).astype(np.uint8), RATE),
               'i32': ((audio * 2 ** 31).astype(np.int32), RATE),
               'f32': (audio, RATE),
               'stereo': (np.stack([audio, audio * 0.5], axis=1), RATE),
               'r8k': (tone(1.0, seed=2, rate=8000), 8000),
               'r44k': (tone(1.0, seed=3, rate=44100), 44100),
               'r44k_b': (tone(1.0, seed=4, rate=44100), 44100),
               'silent': (np.zeros(RATE, np.int16), RATE)}
    for name, (data, rate) in formats.items():
        write(f'fmt/{name}.wav', rate, data)
        good[f'fmt/{name}.p'] = 'fmt'
    write_24bit(os.path.join(root, 'fmt', 'i24.wav'), audio)
    good['fmt/i24.p'] = 'fmt'
    bad = {'bad/notwav.wav': 'not a readable WAV', 'bad/empty.wav': 'empty audio',
           'bad/short.wav': 'audio too short', 'loose.wav': 'expected <speaker>'}
    write('bad/empty.wav', RATE, np.zeros(0, np.int16))
    write('bad/short.wav', RATE, np.zeros(300, np.int16) + 5)
    for name in ('bad/notwav.wav', 'loose.wav'):
        with open(os.path.join(root, name), 'w') as f:
            f.write('this is not audio\n')
    return {'good': good, 'bad': bad}


@pytest.fixture(scope='module')
def extracted(tmp_path_factory):
    root = tmp_path_factory.mktemp('extract')
    wavs, feats = str(root / 'wavs'), str(root / 'feats')
    expect = make_tree(wavs)
    first = run_script('tools/extract_features.py', '--wav_dir', wavs, '--feat_dir', feats,
                       '--jobs', '2')
    return wavs, feats, expect, first


def test_every_good_file_is_written_with_its_label(extracted):
    _, feats, expect, first = extracted
    written = sorted(os.path.relpath(p, feats).replace(os.sep, '/')
                     for p in glob.glob(os.path.join(feats, '**', '*'), recursive=True)
                     if os.path.isfile(p))
    assert written == sorted(expect['good']), first.stderr  # no temporary files left behind
    for rel, label in expect['good'].items():
        data = load_pickle(os.path.join(feats, rel))
        assert data['label'] == label and data['feat'].dtype == np.float32
        assert data['feat'].shape[1] == 40 and np.isfinite(data['feat']).all()


def test_formats_give_the_same_features(extracted):
    """8/16/24/32-bit int, float and a stereo mix of one signal: the same features (nearly)."""
    _, feats, _, _ = extracted
    ref = load_pickle(os.path.join(feats, 'fmt', 'f32.p'))['feat']
    for name in ('i24', 'i32'):
        feat = load_pickle(os.path.join(feats, 'fmt', name + '.p'))['feat']
        assert np.abs(feat - ref).max() < 0.01
    for name in ('u8', 'stereo'):  # 8-bit quantisation; the stereo mix is 0.75x (-2.5 dB)
        feat = load_pickle(os.path.join(feats, 'fmt', name + '.p'))['feat']
        assert feat.shape == ref.shape and np.corrcoef(feat.ravel(), ref.ravel())[0, 1] > 0.9
    assert load_pickle(os.path.join(feats, 'fmt', 'r8k.p'))['feat'].shape == ref.shape
    assert not load_pickle(os.path.join(feats, 'fmt', 'silent.p'))['feat'].any()


def test_bad_files_are_named_once_and_the_run_goes_on(extracted):
    wavs, _, expect, first = extracted
    assert first.returncode == 1
    n_good, n_bad = len(expect['good']), len(expect['bad'])
    assert f'{n_good} files done, 0 skipped (already there), {n_bad} failed' in first.stdout
    errors = [line for line in first.stderr.splitlines() if line.startswith('failed: ')]
    assert len(errors) == n_bad, first.stderr
    for rel, reason in expect['bad'].items():
        assert sum(os.path.join(wavs, rel) in line and reason in line for line in errors) == 1
    assert first.stderr.strip().splitlines()[-1].startswith(f'error: {n_bad} file(s) failed')
    assert 'warning: ' in first.stdout and 'silent.wav: silent audio' in first.stdout
    assert first.stdout.count('resampling 44100 Hz') == 1  # noted once, not once per file
    assert first.stdout.count('resampling 8000 Hz') == 1
    assert 'Traceback' not in first.stderr


def test_second_run_skips_what_exists(extracted):
    wavs, feats, expect, _ = extracted
    stale = os.path.join(feats, 'fmt', '.i24.p.x7k2.tmp')  # as a killed run leaves it
    with open(stale, 'wb') as f:
        f.write(b'half a pickle')
    again = run_script('tools/extract_features.py', '--wav_dir', wavs, '--feat_dir', feats)
    assert again.returncode == 1  # the bad files still fail
    assert f'0 files done, {len(expect["good"])} skipped' in again.stdout
    assert not os.path.exists(stale) and 'removed unfinished temporary files' in again.stdout


def test_voxceleb_layout_reads_with_the_training_loader(extracted):
    _, feats, _, _ = extracted
    table = read_feats_structure(feats)
    vox = table[table['speaker_id'].str.startswith('id')]
    assert sorted(vox['speaker_id'].unique()) == ['id10000', 'id10001', 'id10002']
    assert len(vox) == 12
    feat, label = read_MFB(vox['filename'].iloc[0])
    assert label == 'id10000' and feat.shape[1] == 40 and feat.dtype == np.float32
    assert feat.shape[0] == 159 - 2 * 50  # 1.6 s: 159 frames, 0.5 s trimmed at each end


def test_unwritable_output_folder_is_one_line(tmp_path):
    wavs = tmp_path / 'wavs' / 'spk'
    wavs.mkdir(parents=True)
    wavfile.write(str(wavs / 'a.wav'), RATE, tone(0.5))
    blocker = tmp_path / 'file'
    blocker.write_text('a regular file, so nothing can be created under it\n')
    result = run_script('tools/extract_features.py', '--wav_dir', str(tmp_path / 'wavs'),
                        '--feat_dir', str(blocker / 'feats'), '--progress', 'false')
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and 'not writable' in lines[0] and str(blocker) in lines[0]



def test_n_bands_setting_gives_that_many_bands(tmp_path):
    """Issue 30 item 9: the tool's band count is --n_bands (was --filter_bank), the name the
    recipe functions, the models and the checkpoints' model_args use."""
    wavs = tmp_path / 'wavs' / 'spk'
    wavs.mkdir(parents=True)
    wavfile.write(str(wavs / 'a.wav'), RATE, tone(1.5))
    result = run_script('tools/extract_features.py', '--wav_dir', str(tmp_path / 'wavs'),
                        '--feat_dir', str(tmp_path / 'f'), '--n_bands', '24', '--jobs', '1',
                        '--progress', 'false')
    assert result.returncode == 0, result.stderr
    assert load_pickle(str(tmp_path / 'f' / 'spk' / 'a.p'))['feat'].shape == (149, 24)

# ---- VoxCeleb end to end: extract -> train -> evaluate with a trial list ------------------

def test_voxceleb_recipe_end_to_end(extracted, tmp_path):
    _, feats, _, _ = extracted
    if not os.path.isfile(os.path.join(ROOT, 'evaluate.py')):
        pytest.skip('evaluate.py not in this checkout')
    train_dir = os.path.join(feats, 'vox_train')
    os.makedirs(train_dir)
    for spk in ('id10000', 'id10001', 'id10002'):  # the VoxCeleb part only
        os.symlink(os.path.join(feats, spk), os.path.join(train_dir, spk))
    log_dir = str(tmp_path / 'run')  # batch 3: 9 training files, no batch of one for BatchNorm
    trained = run_script('train.py', '--train_feat_dir', train_dir, '--n_epochs', '1',
                         '--log_dir', log_dir, '--batch_size', '3', '--val_ratio', '25')
    assert trained.returncode == 0, trained.stderr
    trials = tmp_path / 'trials.txt'
    trials.write_text('1 id10000/vid0/00000.wav id10000/vid1/00001.wav\n'
                      '0 id10000/vid0/00000.wav id10001/vid1/00001.wav\n'
                      '1 id10001/vid0/00000.wav id10001/vid1/00000.wav\n'
                      '0 id10002/vid0/00001.wav id10001/vid0/00001.wav\n')
    scored = run_script('evaluate.py', '--trials', str(trials), '--feat_dir', train_dir,
                        '--log_dir', log_dir, '--use_cuda', 'false')
    assert scored.returncode == 0, scored.stderr
    assert 'EER' in scored.stdout
