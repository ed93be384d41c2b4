"""DB_wav_reader: reading audio in every WAV format, and the file tables."""
import os

import numpy as np
import pytest
from scipy.io import wavfile

import DB_wav_reader
from configure import SetupError
from conftest import write_24bit
from DB_wav_reader import read_audio, read_DB_structure, read_training_folders

RATE = 16000


def ramp(n: int = 1600) -> np.ndarray:
    """A float64 signal in [-0.5, 0.5] whose every format reads back close to itself."""
    return 0.5 * np.sin(np.linspace(0, 20 * np.pi, n))


def write(path, data, rate=RATE) -> str:
    wavfile.write(str(path), rate, data)
    return str(path)


@pytest.mark.parametrize('kind, encode, tolerance', [
    ('uint8', lambda x: np.round(x * 128 + 128).astype(np.uint8), 1 / 128),
    ('int16', lambda x: np.round(x * 32768).astype(np.int16), 1 / 32768),
    ('int32', lambda x: np.round(x * 2 ** 31).astype(np.int32), 1e-7),
    ('float32', lambda x: x.astype(np.float32), 1e-7),
])
def test_formats_read_as_float32_in_full_scale(tmp_path, kind, encode, tolerance):
    signal = ramp()
    audio = read_audio(write(tmp_path / f'{kind}.wav', encode(signal)))
    assert audio.dtype == np.float32 and audio.shape == signal.shape
    assert np.abs(audio - signal).max() <= tolerance


def test_24bit_reads_in_full_scale(tmp_path):
    signal = ramp()
    audio = read_audio(write_24bit(tmp_path / 'i24.wav', signal))
    assert audio.dtype == np.float32 and np.abs(audio - signal).max() < 1e-6


def test_stereo_is_mixed_down(tmp_path):
    signal = ramp().astype(np.float32)
    audio = read_audio(write(tmp_path / 'st.wav', np.stack([signal, np.zeros_like(signal)], 1)))
    assert audio.shape == signal.shape and np.allclose(audio, signal / 2)


@pytest.mark.parametrize('rate', [8000, 44100])
def test_other_rates_are_resampled_and_noted_once(tmp_path, rate, capsys, monkeypatch):
    monkeypatch.setattr(DB_wav_reader, '_rates_noted', set())
    t = np.arange(rate) / rate  # one second of 440 Hz
    first = write(tmp_path / 'a.wav', (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate)
    second = write(tmp_path / 'b.wav', np.zeros(rate, np.float32), rate)
    audio = read_audio(first)
    read_audio(second)
    assert audio.dtype == np.float32 and len(audio) == RATE
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spectrum) - 440) <= 1  # 1 Hz bins: the tone is still at 440 Hz
    out = capsys.readouterr().out
    assert out.count(f'resampling {rate} Hz') == 1 and first in out


def test_non_wav_file_is_a_setup_error(tmp_path):
    path = tmp_path / 'x.wav'
    path.write_text('not audio')
    with pytest.raises(SetupError, match='x.wav: not a readable WAV file'):
        read_audio(str(path))
    with pytest.raises(SetupError, match='not a readable WAV file'):
        read_audio(str(tmp_path / 'missing.wav'))


def test_db_structure_is_sorted_with_speaker_and_dataset(tmp_path):
    for rel in ('test/spkB/2.wav', 'test/spkA/9.wav', 'test/spkB/1.wav', 'train/spkC/x.wav'):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        write(path, np.zeros(10, np.int16))
    table = read_DB_structure(str(tmp_path), '**/*.wav')
    assert list(table.columns) == ['filename', 'speaker_id', 'dataset_id']
    assert list(table['filename']) == sorted(table['filename'])
    assert [os.path.relpath(f, tmp_path) for f in table['filename']] == [
        'test/spkA/9.wav', 'test/spkB/1.wav', 'test/spkB/2.wav', 'train/spkC/x.wav']
    assert list(table['speaker_id']) == ['spkA', 'spkB', 'spkB', 'spkC']
    assert list(table['dataset_id']) == ['test', 'test', 'test', 'train']


def test_windows_separators_are_normalised(monkeypatch):
    files = ['C:\\db\\test\\spk2\\b.wav', 'C:\\db\\test\\spk1\\a.wav']
    monkeypatch.setattr(DB_wav_reader, 'find_files', lambda d, p: sorted(files))
    table = read_DB_structure('C:\\db')
    assert list(table['filename']) == ['C:/db/test/spk1/a.wav', 'C:/db/test/spk2/b.wav']
    assert list(table['speaker_id']) == ['spk1', 'spk2']
    assert list(table['dataset_id']) == ['test', 'test']


def feature_tree(root, speakers: dict) -> str:
    """<root>/<speaker>/<n>.p for {speaker: n_files} (the files' contents are not read)."""
    for speaker, n_files in speakers.items():
        (root / speaker).mkdir(parents=True)
        for n in range(n_files):
            (root / speaker / f'{n}.p').write_bytes(b'')
    return str(root)


def test_training_folders_one_or_several(tmp_path):
    corpus = feature_tree(tmp_path / 'corpus', {'spkA': 2, 'spkB': 1})
    own = feature_tree(tmp_path / 'own', {'me': 3})
    assert list(read_training_folders(corpus)['speaker_id']) == ['spkA', 'spkA', 'spkB']
    both = read_training_folders(f'{corpus}, {own}')
    assert list(both['speaker_id']) == ['spkA', 'spkA', 'spkB', 'me', 'me', 'me']
    assert both.index.is_unique


def test_training_folders_refuse_a_speaker_in_two_and_bad_lists(tmp_path):
    first = feature_tree(tmp_path / 'first', {'spkA': 1})
    second = feature_tree(tmp_path / 'second', {'spkA': 1, 'spkB': 1})
    with pytest.raises(SetupError, match=f'speaker spkA is in both {first} and {second}'):
        read_training_folders(f'{first},{second}')
    with pytest.raises(SetupError, match='an empty folder name'):
        read_training_folders(f'{first},,{second}')
    with pytest.raises(SetupError, match='a folder is listed twice'):
        read_training_folders(f'{first},{first}/')
    with pytest.raises(SetupError, match='missing: feature folder not found'):
        read_training_folders(f'{first},{tmp_path}/missing')


def test_links_inside_the_tree_add_no_copies_and_no_phantom_speakers(tmp_path):
    """Issue 27 case 7: spkA/loop -> .. counted every file again and again (validation files
    became copies of training files); spkA/again -> . made a speaker 'again'."""
    root = tmp_path / 'T'
    feature_tree(root, {'spkA': 2, 'spkB': 2})
    os.symlink('..', root / 'spkA' / 'loop')
    os.symlink('.', root / 'spkA' / 'again')
    os.symlink('spkB', root / 'alias')                         # a second name of a speaker
    os.symlink(root / 'spkB' / '0.p', root / 'spkA' / 'b0.p')  # a file of spkB under spkA
    outside = feature_tree(tmp_path / 'outside', {'spkC': 1})  # links out are followed
    os.symlink(os.path.join(outside, 'spkC'), root / 'spkC')
    table = read_training_folders(str(root))
    assert [os.path.relpath(f, root) for f in table['filename']] == [
        'spkA/0.p', 'spkA/1.p', 'spkB/0.p', 'spkB/1.p', 'spkC/0.p']
    assert sorted(table['speaker_id'].unique()) == ['spkA', 'spkB', 'spkC']


def test_a_feature_folder_with_files_at_another_depth_is_refused_naming_one(tmp_path):
    """Issue 27 case 8: the parent of train/ and test/ trained on the test speakers."""
    feature_tree(tmp_path / 'feats' / 'train', {'spkA': 2})
    feature_tree(tmp_path / 'feats' / 'test', {'spkT': 1})
    with pytest.raises(SetupError, match=r'3 of 3 files are not at <folder>/<speaker>/<file> '
                                         r'\(e\.g\. .*feats/test/spkT/0\.p, 3 names'):
        read_training_folders(str(tmp_path / 'feats'))
    (tmp_path / 'feats' / 'train' / 'loose.p').write_bytes(b'')
    with pytest.raises(SetupError, match=r'1 of 3 files .*train/loose\.p, 1 names'):
        read_training_folders(str(tmp_path / 'feats' / 'train'))


def test_an_unreadable_folder_a_broken_link_and_a_fifo_are_one_line(tmp_path, monkeypatch):
    root = tmp_path / 'T'
    feature_tree(root, {'spkA': 1, 'spkB': 1})
    os.symlink(tmp_path / 'gone.p', root / 'spkA' / 'gone.p')
    with pytest.raises(SetupError, match='gone.p: a broken link'):
        read_training_folders(str(root))
    os.remove(root / 'spkA' / 'gone.p')
    os.mkfifo(root / 'spkA' / 'pipe.p')
    with pytest.raises(SetupError, match='pipe.p: not a plain file'):
        read_training_folders(str(root))
    os.remove(root / 'spkA' / 'pipe.p')
    scandir = os.scandir

    def unreadable(path):  # as chmod 0 would, for a user other than root
        if str(path).endswith('spkB'):
            raise PermissionError(13, 'Permission denied')
        return scandir(path)
    monkeypatch.setattr(os, 'scandir', unreadable)
    with pytest.raises(SetupError, match='spkB: cannot read the folder'):
        read_training_folders(str(root))
