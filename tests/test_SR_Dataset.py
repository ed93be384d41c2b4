import os
import random

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from configure import SetupError
from conftest import TUTORIAL_DB, needs_tutorial_db
from dvector.augment import speed_perturb
from dvector.fileio import save_pickle
from SR_Dataset import (
    DvectorDataset,
    collate_fn_feat_padded,
    random_window,
    read_feature_file,
    read_MFB,
    trim_silence,
)


def write(tmp_path, obj, name='x.p'):
    path = str(tmp_path / 'spk' / name)
    save_pickle(obj, path)
    return path


@pytest.mark.parametrize('dtype', [np.float16, np.float32, np.float64])
def test_read_trims_half_a_second_each_end_as_float32(tmp_path, dtype):
    feat = np.arange(300 * 40).reshape(300, 40).astype(dtype)
    trimmed, label = read_MFB(write(tmp_path, {'feat': feat, 'label': 'spk'}))
    assert trimmed.dtype == np.float32 and trimmed.shape == (200, 40) and label == 'spk'
    np.testing.assert_array_equal(trimmed, feat[50:250].astype(np.float32))


def test_too_short_to_trim_is_kept_whole():
    feat = np.ones((80, 40), np.float32)
    assert trim_silence(feat).shape == (80, 40)


@pytest.mark.parametrize('obj,message', [
    ([1, 2, 3], 'not a feature file'),
    ({'label': 'x'}, 'not a feature file'),
    ({'feat': np.zeros((0, 40)), 'label': 'x'}, 'non-empty'),
    ({'feat': np.array([[1.0, np.nan]]), 'label': 'x'}, 'NaN or infinite'),
    ({'feat': np.array([[1.0, np.inf]]), 'label': 'x'}, 'NaN or infinite'),
    # issue 27 case 10: a complex array lost its imaginary part with only numpy's warning
    ({'feat': np.ones((5, 40)) * (1 + 2j), 'label': 'x'}, 'real numbers, .* dtype complex128'),
    ({'feat': np.ones((5, 40), bool), 'label': 'x'}, 'real numbers, .* dtype bool'),
    ({'feat': np.zeros((5, 0)), 'label': 'x'}, 'non-empty'),
])
def test_bad_feature_files_name_the_file(tmp_path, obj, message):
    path = write(tmp_path, obj)
    with pytest.raises(SetupError, match=message) as err:
        read_feature_file(path)
    assert path in str(err.value)


def test_random_window_centre_range_and_tiling():
    random.seed(0)
    feat = np.arange(250, dtype=np.float32)[:, None].repeat(40, 1)
    starts = {int(random_window(feat, 100)[0, 0]) for _ in range(3000)}
    assert min(starts) == 0 and max(starts) == 149  # centre uniform in [50, 200)
    short = np.arange(30, dtype=np.float32)[:, None].repeat(40, 1)
    window = random_window(short, 100)
    assert window.shape == (100, 40)
    assert set(np.unique(window[:, 0])) <= set(range(30))  # made of the utterance's frames


def test_dataset_gives_training_crops_and_padded_validation(feature_tree):
    train_dir, _ = feature_tree
    files = sorted(os.path.join(r, f) for r, _, fs in os.walk(train_dir) for f in fs)
    speakers = [os.path.basename(os.path.dirname(f)) for f in files]
    spk_to_idx = {s: i for i, s in enumerate(sorted(set(speakers)))}
    train = DvectorDataset(files, speakers, spk_to_idx)
    x, y = next(iter(DataLoader(train, batch_size=5)))
    assert x.shape == (5, 1, 40, 100) and x.dtype == torch.float32 and y.dtype == torch.long
    valid = DvectorDataset(files, speakers, spk_to_idx, train=False, in_memory=False)
    x, y = next(iter(DataLoader(valid, batch_size=4, collate_fn=collate_fn_feat_padded)))
    lengths = [len(read_MFB(f)[0]) for f in files[:4]]
    assert x.shape == (4, 1, 40, max(lengths))


def test_dataset_reads_a_pair_item_at_its_speed(feature_tree):
    train_dir, _ = feature_tree
    files = sorted(os.path.join(r, f) for r, _, fs in os.walk(train_dir) for f in fs)[:2]
    speakers = [os.path.basename(os.path.dirname(f)) for f in files]
    spk_to_idx = {s: i for i, s in enumerate(sorted(set(speakers)))}
    data = DvectorDataset(files, speakers, spk_to_idx, speed_factors=(0.9, 1.1),
                               perturb=speed_perturb)
    for k in range(3):
        x, y = data[(1, k)]
        assert x.shape == (1, 40, 100) and y == spk_to_idx[speakers[1]] + k * len(spk_to_idx)


def test_padding_repeats_shorter_utterances_longest_first():
    a, b = torch.arange(5.).view(1, 1, 5), torch.arange(2.).view(1, 1, 2)
    x, y = collate_fn_feat_padded([(b, 1), (a, 0)])
    assert y.tolist() == [0, 1]
    assert x[1, 0, 0].tolist() == [0, 1, 0, 1, 0]


@needs_tutorial_db()
def test_real_tutorial_pickles_load():
    test = os.path.join(TUTORIAL_DB, 'feat_logfbank_nfilt40', 'test', '230M4087', 'test.p')
    feat, label = read_MFB(test)  # float64, numpy 1.x pickle
    assert label == '230M4087' and feat.dtype == np.float32 and feat.shape[1] == 40
    train = os.path.join(TUTORIAL_DB, 'feat_logfbank_nfilt40', 'train', '084F2102')
    feat, label = read_MFB(os.path.join(train, sorted(os.listdir(train))[0]))  # float16
    assert label == '084F2102' and feat.shape[1] == 40


def test_falls_back_to_reading_per_sample_when_memory_is_short(monkeypatch, capsys,
                                                                feature_tree):
    import SR_Dataset
    train_dir, _ = feature_tree
    files = sorted(os.path.join(r, f) for r, _, fs in os.walk(train_dir) for f in fs)[:4]
    speakers = [os.path.basename(os.path.dirname(f)) for f in files]
    monkeypatch.setattr(SR_Dataset, 'available_memory', lambda: 1000)
    dataset = DvectorDataset(files, speakers, {s: i for i, s in enumerate(sorted(set(speakers)))})
    assert dataset.feats is None and 'reading them from disk per sample' in capsys.readouterr().out
    assert dataset[0][0].shape == (1, 40, 100)


def test_validation_order_by_length_or_the_tutorials(feature_tree):
    train_dir, _ = feature_tree
    files = sorted(os.path.join(r, f) for r, _, fs in os.walk(train_dir) for f in fs)
    random.Random(0).shuffle(files)  # the split's random order
    speakers = [os.path.basename(os.path.dirname(f)) for f in files]
    spk_to_idx = {s: i for i, s in enumerate(sorted(set(speakers)))}
    lengths = {f: len(read_MFB(f)[0]) for f in files}
    by_length = DvectorDataset(files, speakers, spk_to_idx, train=False)
    assert by_length.files == sorted(files, key=lambda f: -lengths[f])
    tutorial = DvectorDataset(files, speakers, spk_to_idx, train=False, by_length=False)
    assert tutorial.files == files
    x, _ = next(iter(DataLoader(tutorial, batch_size=4, collate_fn=collate_fn_feat_padded)))
    assert x.shape[-1] == max(lengths[f] for f in files[:4])  # tiled to the batch's longest


def test_validation_memory_is_bounded_whatever_one_file_s_length(tmp_path):
    """Issue 27 case 12: one 100,000-frame validation utterance tiled every batch to its
    length (4.3 GB with 3 validation files)."""
    from SR_Dataset import VALID_MAX_FRAMES
    files = []
    for name, frames in (('long', 100000), ('short', 300), ('mid', VALID_MAX_FRAMES + 1)):
        files.append(str(tmp_path / f'{name}.p'))
        feat = np.tile((np.arange(frames) % 1000).astype(np.float16)[:, None], (1, 40))
        save_pickle({'feat': feat, 'label': name}, files[-1])
    for in_memory in (True, False):
        data = DvectorDataset(files, ['a', 'b', 'a'], {'a': 0, 'b': 1}, train=False,
                              in_memory=in_memory)
        loader = DataLoader(data, batch_size=3, collate_fn=collate_fn_feat_padded)
        inputs, _ = next(iter(loader))
        assert inputs.shape == (3, 1, 40, VALID_MAX_FRAMES)
    long = data[0][0]  # (1, 40, frames): the middle of the long file
    first = 50 + (100000 - 100 - VALID_MAX_FRAMES) // 2  # after read_MFB's 0.5 s trim
    assert long.shape[-1] == VALID_MAX_FRAMES and float(long[0, 0, 0]) == first % 1000


def test_common_n_bands_is_the_count_every_file_has_or_names_the_odd_file(tmp_path):
    """Issue 30 item 9: the band count is n_bands here too (the method was feature_width)."""
    rng = np.random.default_rng(0)
    files = [write(tmp_path, {'feat': rng.normal(size=(300, n)), 'label': 'spk'}, f'u{i}.p')
             for i, n in enumerate((24, 24, 24))]
    train = DvectorDataset(files[:2], ['spk'] * 2, {'spk': 0})
    assert train.common_n_bands(DvectorDataset(files[2:], ['spk'], {'spk': 0}, train=False)) == 24
    odd = write(tmp_path, {'feat': rng.normal(size=(300, 40)), 'label': 'spk'}, 'odd.p')
    with pytest.raises(SetupError, match=r'odd.p: 40 feature bands, but the other training '
                                         r'files have 24 \(1 files differ\)'):
        train.common_n_bands(DvectorDataset([odd], ['spk'], {'spk': 0}, train=False))
