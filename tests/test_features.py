"""dvector/features.py's level step: recordings are set to the tutorial DB's speech level before
their features are made, so that a d-vector does not depend on how loud one spoke."""
import os
import re

import numpy as np
import pytest
import torch

import dvector
from conftest import ROOT
from DB_wav_reader import read_audio
from dvector import SetupError
from dvector.features import (
    SPEECH_LEVEL_DB,
    at_db_level,
    fast_logfbank,
    recording_features,
    speech_level_db,
)

WAV = os.path.join(ROOT, 'test_wavs', 'demo_f45', 'enroll.wav')  # 15 s of espeak-ng speech
REAL_MODEL = os.path.join(ROOT, 'model_real')


def test_the_level_is_that_of_the_louder_half_of_the_frames():
    tone = 0.1 * np.sin(2 * np.pi * 400 * np.arange(16000) / 16000)      # -23.0 dB of power
    assert speech_level_db(tone) == pytest.approx(10 * np.log10(0.1 ** 2 / 2), abs=0.01)
    with_pause = np.concatenate([tone, np.zeros(16000)])                  # half the frames silent
    assert speech_level_db(with_pause) == pytest.approx(speech_level_db(tone), abs=0.01)
    assert speech_level_db(np.zeros(800)) == -np.inf


def test_at_db_level_sets_the_level_and_leaves_silence_alone():
    audio = read_audio(WAV)
    for gain in (0.05, 1.0, 20.0):
        scaled = at_db_level(audio * gain)
        assert scaled.dtype == audio.dtype
        assert speech_level_db(scaled) == pytest.approx(SPEECH_LEVEL_DB, abs=0.01)
    silence = np.zeros(1600, dtype=np.float32)
    assert np.array_equal(at_db_level(silence), silence)


def test_features_do_not_depend_on_the_level_of_the_recording():
    audio = read_audio(WAV)
    quiet, loud = recording_features(audio * 0.1), recording_features(audio * 10)
    assert np.allclose(quiet, loud, atol=1e-3)
    # without the level step the floor of the recipe makes them differ
    assert not np.allclose(fast_logfbank(audio * 0.1), fast_logfbank(audio * 10), atol=1.0)


@pytest.mark.skipif(not os.path.isdir(REAL_MODEL), reason='needs model_real/')
def test_a_louder_copy_of_a_recording_has_the_same_d_vector(tmp_path):
    encoder = dvector.Encoder(model_dir=REAL_MODEL, device='cpu')
    audio = read_audio(WAV)
    as_is = encoder.embed(audio, 16000)
    assert np.abs(audio).max() < 0.62
    for gain in (0.03, 1.6):  # -30 dB and +4 dB (its peaks stay under full scale)
        other = encoder.embed(audio * gain, 16000)
        assert float(torch.dot(as_is, other)) > 0.99, gain


def test_a_level_file_is_one_number_on_its_first_line(tmp_path):
    """LEVEL_FILE as editors and careless hands leave it: a byte-order mark and a second line are
    read; a folder, a dangling link, a huge or empty file of that name are refused, not taken for
    "no file" (the model would then be told the tutorial DB's level)."""
    from dvector.features import LEVEL_FILE, tree_level_db
    feats, level_file = tmp_path / 'train', tmp_path / LEVEL_FILE
    feats.mkdir()
    assert tree_level_db(str(feats)) == SPEECH_LEVEL_DB  # none: the tutorial DB's
    level_file.write_bytes('\ufeff-20.5\nmade by make_demo_db.py\n'.encode('utf-8'))
    assert tree_level_db(str(feats)) == -20.5
    for make, shown in ((lambda: level_file.mkdir(), 'a folder'),
                        (lambda: level_file.symlink_to(tmp_path / 'gone.txt'), 'a link to nothing'),
                        (lambda: level_file.write_text('-' + '1' * 10 ** 6), "'-1111111"),
                        (lambda: level_file.write_text(''), "''"),
                        (lambda: level_file.write_text('+5\n'), "'+5'")):
        if level_file.is_dir():
            level_file.rmdir()
        elif os.path.lexists(level_file):
            level_file.unlink()
        make()
        with pytest.raises(SetupError, match=f'{LEVEL_FILE}: expected the speech level.*found '
                           + re.escape(shown)):
            tree_level_db(str(feats))


def test_a_linked_training_folder_keeps_its_trees_level(tmp_path):
    """train_feat_dir given as a link to a tree's train/: the level file beside the folder it
    links to is the one (it was read beside the link, and the model was told -42 dB); a level
    file beside the link too must agree."""
    from dvector.features import LEVEL_FILE, tree_level_db
    tree, elsewhere = tmp_path / 'tree', tmp_path / 'elsewhere'
    (tree / 'train').mkdir(parents=True)
    elsewhere.mkdir()
    (tree / LEVEL_FILE).write_text('-20.5\n')
    (elsewhere / 'train').symlink_to(tree / 'train')
    assert tree_level_db(str(elsewhere / 'train')) == -20.5
    (elsewhere / LEVEL_FILE).write_text('-20.5\n')
    assert tree_level_db(str(elsewhere / 'train')) == -20.5
    (elsewhere / LEVEL_FILE).write_text('-30\n')
    with pytest.raises(SetupError, match='level files disagree'):
        tree_level_db(str(elsewhere / 'train'))
