"""make_demo_db.py: layout, formats and determinism of a tiny generated demo DB."""
import glob
import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest
from scipy.io import wavfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

pytestmark = pytest.mark.skipif(
    shutil.which('espeak-ng') is None or shutil.which('sox') is None,
    reason='needs espeak-ng and sox (apt-get install espeak-ng sox)')

SMALL = ['--n_train_speakers', '3', '--n_utts', '2', '--n_test_speakers', '2',
         '--test_seconds', '4', '--jobs', '1']


def generate(out_dir, *args):
    command = [sys.executable, 'tools/make_demo_db.py', '--out_dir', str(out_dir), *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)


def load(path):
    with open(path, 'rb') as f:
        return pickle.load(f)


@pytest.fixture(scope='module')
def demo_db(tmp_path_factory):
    out = tmp_path_factory.mktemp('demo')
    result = generate(out, *SMALL)
    assert result.returncode == 0, result.stderr
    return out


def relative_files(root):
    return sorted(os.path.relpath(p, root) for p in glob.glob(f'{root}/**/*', recursive=True)
                  if os.path.isfile(p))


def test_layout(demo_db):
    files = relative_files(demo_db)
    train = [f for f in files if f.startswith('feat_logfbank_nfilt40/train/')]
    assert len(train) == 3 * 2
    assert sorted({f.split('/')[2] for f in train}) == ['demo_f01', 'demo_m02', 'demo_m03']
    for f in train:
        speaker = f.split('/')[2]
        assert os.path.basename(f) in (f'{speaker}_u01.p', f'{speaker}_u02.p')
    test_speakers = sorted(os.listdir(demo_db / 'test_wavs'))
    assert len(test_speakers) == 2 and not set(test_speakers) & {f.split('/')[2] for f in train}
    for speaker in test_speakers:
        for kind in ('enroll', 'test'):
            assert f'feat_logfbank_nfilt40/test/{speaker}/{kind}.p' in files
            assert f'test_wavs/{speaker}/{kind}.wav' in files
    assert 'feat_logfbank_nfilt40/speech_level_db.txt' in files  # the level the model hears
    assert len(files) == 6 + 2 * 2 * 2 + 1  # and no temporary files left behind


def test_feature_pickles(demo_db):
    for path in glob.glob(f'{demo_db}/feat_logfbank_nfilt40/*/*/*.p'):
        data = load(path)
        assert set(data) == {'feat', 'label'}
        assert data['label'] == os.path.basename(os.path.dirname(path))
        assert data['label'].startswith('demo_')
        assert data['feat'].dtype == np.float16 and data['feat'].shape[1] == 40
        assert np.all(np.isfinite(data['feat']))
        n_frames = data['feat'].shape[0]
        if '/train/' in path:
            assert 199 <= n_frames <= 399  # 2-4 s at a 10 ms hop
        else:
            assert n_frames == 399  # exactly 4 s


def test_wavs_match_features(demo_db):
    from DB_wav_reader import read_audio
    from dvector.features import logfbank_features
    for path in glob.glob(f'{demo_db}/test_wavs/*/*.wav'):
        rate, audio = wavfile.read(path)
        assert rate == 16000 and audio.dtype == np.int16 and audio.ndim == 1
        assert 0.05 < np.max(np.abs(audio)) / 32768 < 1.0
        pickled = load(path.replace('test_wavs', 'feat_logfbank_nfilt40/test')[:-4] + '.p')
        recomputed = logfbank_features(read_audio(path))
        np.testing.assert_allclose(recomputed, pickled['feat'], rtol=1e-3, atol=0.02)
        assert np.array_equal(recomputed.astype(np.float16), pickled['feat'])


def test_deterministic(demo_db, tmp_path):
    assert generate(tmp_path, *SMALL).returncode == 0
    files = relative_files(demo_db)
    assert relative_files(tmp_path) == files
    for name in files:
        assert (demo_db / name).read_bytes() == (tmp_path / name).read_bytes(), name


def test_bad_setting_is_one_line(tmp_path):
    result = generate(tmp_path, '--n_utts', 'abc')
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1 and 'n_utts' in result.stderr
    assert not os.listdir(tmp_path)


def test_speaker_numbers_grow_to_three_digits_past_99(tmp_path):
    """The shipped demo DB keeps demo_f01; a bigger synthetic set (a second training corpus for
    the real-speech model) numbers demo_f001 .. up to 999 speakers; more is one line."""
    import tools.make_demo_db as demo
    rng = np.random.default_rng(0)
    assert {len(v['speaker']) for v in demo.speaker_voices(rng, 99)} == {len('demo_f01')}
    names = [v['speaker'] for v in demo.speaker_voices(rng, 120)]
    assert {len(n) for n in names} == {len('demo_f001')} and len(set(names)) == 120
    assert names[-1].endswith('120')
    result = generate(tmp_path, '--n_train_speakers', '990', '--n_test_speakers', '10')
    assert result.returncode != 0 and 'at most 999 speakers' in result.stderr
    assert not os.listdir(tmp_path)


def test_speech_level_sets_each_file_to_the_level_asked(tmp_path, demo_db):
    """--speech_level -42: every file at the tutorial DB's speech level +-3 dB (the features
    depend on the level); the default keeps the level as synthesised (the shipped demo DB)."""
    from dvector.features import speech_level_db
    result = generate(tmp_path, '--n_train_speakers', '2', '--n_utts', '1', '--n_test_speakers',
                      '1', '--test_seconds', '4', '--jobs', '1', '--speech_level', '-42')
    assert result.returncode == 0, result.stderr

    def levels(root):
        return [speech_level_db(wavfile.read(p)[1] / 32768.0)
                for p in glob.glob(f'{root}/test_wavs/*/*.wav')]
    assert levels(tmp_path) and all(-45.1 < level < -38.9 for level in levels(tmp_path))
    assert all(level > -30 for level in levels(demo_db))
    # the median level of the files, beside train/ and test/, for train.py to store in the model
    from dvector.features import tree_level_db
    feats = tmp_path / 'feat_logfbank_nfilt40' / 'train'
    assert -45.1 < tree_level_db(str(feats)) < -38.9
    assert tree_level_db(str(demo_db / 'feat_logfbank_nfilt40' / 'train')) > -30
