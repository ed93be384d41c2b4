"""Band limiting and speed perturbation on log mel features (augment.py), in the dataset."""
import os
import subprocess

import numpy as np
import pytest
import torch

from dvector.augment import band_centres_hz, band_limit, band_warp_matrix, speed_perturb
from dvector.recordings import wav_features
from SR_Dataset import DvectorDataset


@pytest.mark.parametrize('factor', [0.8, 0.9, 1.1, 1.25])
def test_band_warp_rows_are_interpolation_weights(factor):
    matrix = band_warp_matrix(factor, 40, 16000)
    assert matrix.shape == (40, 40) and (matrix >= 0).all()
    assert np.allclose(matrix.sum(axis=1), 1.0)
    assert (np.count_nonzero(matrix, axis=1) <= 2).all()  # two neighbouring bands at most


def test_speed_one_is_the_identity():
    assert np.allclose(band_warp_matrix(1.0, 40, 16000), np.eye(40))
    crop = np.random.default_rng(0).standard_normal((100, 40)).astype(np.float32)
    assert np.allclose(speed_perturb(crop, 1.0, 100, 16000), crop, atol=1e-6)


@pytest.mark.parametrize('factor', [0.9, 1.1])
def test_a_formant_moves_to_factor_times_its_frequency(factor):
    centres = band_centres_hz(40, 16000)
    crop = np.zeros((110, 40), dtype=np.float32)
    crop[:, 20] = 1.0                                   # energy in one band only
    out = speed_perturb(crop, factor, 100, 16000)
    peak_hz = (out[0] * centres).sum() / out[0].sum()   # centre of mass of the moved energy
    assert peak_hz == pytest.approx(centres[20] * factor, rel=0.03)


def test_time_is_resampled_to_the_window_keeping_both_ends():
    ramp = np.repeat(np.arange(110, dtype=np.float32)[:, None], 40, axis=1)  # frame index
    out = speed_perturb(ramp, 1.1, 100, 16000)
    assert out.shape == (100, 40)
    assert out[0, 20] == pytest.approx(0) and out[-1, 20] == pytest.approx(109)
    assert (np.diff(out[:, 20]) > 0).all()


def test_dataset_labels_perturbed_crops_as_new_speakers(feature_tree):
    train_dir, _ = feature_tree
    files = sorted(os.path.join(r, f) for r, _, fs in os.walk(train_dir) for f in fs)
    speakers = [os.path.basename(os.path.dirname(f)) for f in files]
    spk_to_idx = {s: i for i, s in enumerate(sorted(set(speakers)))}
    n = len(spk_to_idx)
    plain = DvectorDataset(files, speakers, spk_to_idx)
    perturbed = DvectorDataset(files, speakers, spk_to_idx, speed_factors=(0.9, 1.1),
                               perturb=speed_perturb)
    seen = {perturbed[0][1] for _ in range(60)}
    own = plain[0][1]
    assert seen == {own, own + n, own + 2 * n}          # the speaker, at 0.9 and at 1.1
    assert all(perturbed[i][0].shape == (1, 40, 100) for i in range(len(files)))
    valid = DvectorDataset(files, speakers, spk_to_idx, train=False, speed_factors=(0.9, 1.1),
                               perturb=speed_perturb)
    assert max(valid[i][1] for i in range(len(files))) < n  # whole utterances stay unperturbed


def test_band_limit_zeroes_exactly_the_bands_an_8_khz_recording_loses(tmp_path):
    """A crop cut at the upper edge (4.4 kHz) loses what an 8 kHz 8-bit recording of speech
    loses after normalisation (its flat upper bands); never a band under 3.4 kHz."""
    wav = tmp_path / 'speech.wav'
    narrow = tmp_path / 'narrow.wav'
    subprocess.run(['espeak-ng', '-w', str(wav), 'the quick brown fox jumps over the lazy dog'],
                   check=True)
    subprocess.run(['sox', str(wav), '-r', '16000', str(tmp_path / 'wide.wav')], check=True)
    subprocess.run(['sox', str(tmp_path / 'wide.wav'), '-r', '8000', '-b', '8', str(narrow)],
                   check=True)
    flat = wav_features(str(narrow)).std(0) < 1e-6                          # (bands,)
    batch = torch.randn(2, 1, 40, 100)
    cut = band_limit(batch, 1.0, low_hz=4400.0, high_hz=4400.0)
    zeroed = (cut[0, 0] == 0).all(1).numpy()                                 # (bands,)
    centres = band_centres_hz(40, 16000)
    assert zeroed.any() and not zeroed[centres < 3400].any()
    assert (zeroed <= flat).all()                    # only bands a narrowband recording loses


def test_band_limit_leaves_crops_alone_at_probability_0_and_is_a_copy():
    batch = torch.randn(8, 1, 40, 100)
    assert torch.equal(band_limit(batch, 0.0), batch)
    cut = band_limit(batch, 1.0)
    assert (cut[:, 0, -1] == 0).all() and (cut[:, 0, :20] == batch[:, 0, :20]).all()
    assert (batch[:, 0, -1] != 0).all()              # the input is not changed in place
