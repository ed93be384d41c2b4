"""The shipped models give the results README and docs/RESULTS.md promise: the demo model with
its enrollments, and the real-speech model (model_real/) with its recipe and threshold."""
import os
import re

import pytest
import torch

import identification
import verification
from conftest import ROOT, TUTORIAL_DB, needs_tutorial_db, run_script
from dvector.calibration import model_calibration
from dvector.checkpoint import RESUME_ONLY, load_model, read_checkpoint
from dvector.cli import read_recipe
from dvector.embedding import embed_files
from dvector.enrollment import (
    load_enroll_embeddings,
    model_fingerprint,
    select_speakers,
    split_enroll_and_test,
)
from dvector.scoring import cosine_scores
from dvector.threshold import THRESHOLD_KEY, choose_threshold, model_threshold

LOG_DIR = os.path.join(ROOT, 'model_saved')
EMB_DIR = os.path.join(ROOT, 'enroll_embeddings')
TEST_DIR = os.path.join(ROOT, 'feat_logfbank_nfilt40', 'test')


def shipped_scores(test_frames):
    model, checkpoint = load_model(LOG_DIR, 0, torch.device('cpu'))
    speakers, enrolled = select_speakers(load_enroll_embeddings(EMB_DIR, checkpoint), [], EMB_DIR)
    _, test_table = split_enroll_and_test(TEST_DIR)
    assert list(test_table['speaker_id']) == speakers  # one test.p per enrolled speaker
    tests = embed_files(model, list(test_table['filename']), test_frames, torch.device('cpu'))
    return speakers, cosine_scores(tests, enrolled), checkpoint  # (test, enrolled)


def test_one_small_checkpoint_is_shipped():
    files = os.listdir(LOG_DIR)
    assert len([f for f in files if f.startswith('checkpoint_')]) == 1
    assert 'loss_plot.png' in files
    path = [os.path.join(LOG_DIR, f) for f in files if f.startswith('checkpoint_')][0]
    assert os.path.getsize(path) < 4_500_000


def test_the_demo_checkpoint_is_in_the_format_train_py_writes(trained_run):
    """Issue 30 item 4: the keys of a checkpoint that train.py writes today (less the optimizer
    state, never shipped) and its model_args, with the weights the shipped enrollments were
    made with (their record's fingerprint)."""
    shipped = read_checkpoint(LOG_DIR)
    fresh = read_checkpoint(trained_run[0])
    assert set(shipped) == set(fresh) - set(RESUME_ONLY) | {THRESHOLD_KEY}
    assert set(shipped['model_args']) == set(fresh['model_args'])
    assert set(shipped['loss_args']) == set(fresh['loss_args'])
    assert shipped['feature_settings'] == fresh['feature_settings']
    with open(os.path.join(EMB_DIR, 'enrolled_with.txt')) as f:
        assert f.readline().split()[0] == model_fingerprint(shipped)


def test_identification_is_right_for_every_demo_test_speaker():
    speakers, scores, checkpoint = shipped_scores(identification.test_frames)
    assert len(speakers) == 10 and checkpoint['model_args']['n_classes'] == 40
    predicted = [speakers[i] for i in scores.argmax(dim=1).tolist()]
    assert predicted == speakers


def test_verification_separates_every_pair_at_the_default_threshold():
    speakers, scores, checkpoint = shipped_scores(verification.test_frames)
    thres, _ = choose_threshold(verification.thres, checkpoint)  # 0: the model's own
    assert thres == pytest.approx(0.9938, abs=1e-4)
    same = scores.diagonal()
    different = scores[~torch.eye(len(speakers), dtype=torch.bool)]
    # in the middle of the gap (its EER is 0), not on the top impostor's score, where the same
    # trial summed on another machine (3e-8 away) was accepted
    assert (same > thres + 1e-3).all(), same
    assert (different < thres - 1e-3).all(), different.max()


def test_shipped_enrollments_match_a_fresh_enrollment(tmp_path):
    result = run_script('enroll.py', '--embedding_dir', str(tmp_path))
    assert result.returncode == 0, result.stderr
    for name in os.listdir(EMB_DIR):
        if not name.endswith('.pth'):
            continue
        shipped = torch.load(os.path.join(EMB_DIR, name), weights_only=True)
        fresh = torch.load(os.path.join(tmp_path, name), weights_only=True)
        assert torch.allclose(shipped, fresh, atol=1e-4), name
    with open(os.path.join(EMB_DIR, 'enrolled_with.txt')) as a, \
            open(os.path.join(tmp_path, 'enrolled_with.txt')) as b:
        assert a.read() == b.read()  # the shipped folder names the shipped model


def test_default_scripts_run_on_the_shipped_model():
    result = run_script('identification.py')
    assert result.returncode == 0, result.stderr
    assert f'True speaker : {identification.test_speaker}\nPredicted speaker : ' \
           f'{identification.test_speaker}\nResult : True' in result.stdout
    result = run_script('verification.py')
    assert result.returncode == 0, result.stderr
    assert 'Result : Accept' in result.stdout


# ---- the real-speech model ----

REAL_DIR = os.path.join(ROOT, 'model_real')
REAL_THRESHOLD = 0.6556  # its EER threshold on the long held-out trials (RESULTS.md 11)


def test_the_real_model_is_one_small_checkpoint_of_its_recipe():
    files = sorted(os.listdir(REAL_DIR))
    assert len([f for f in files if f.startswith('checkpoint_')]) == 1 and 'loss_plot.png' in files
    checkpoint = read_checkpoint(REAL_DIR)
    assert os.path.getsize(checkpoint['path']) <= 10_000_000
    assert 'optimizer' not in checkpoint and checkpoint['model_args']['backbone'] == 'ecapa'
    recipe = read_recipe(os.path.join(ROOT, 'recipes', 'real_model_lmft.py'),
                         checkpoint['train_settings'])
    trained = checkpoint['train_settings']
    paths = ('log_dir', 'init_from')  # where it ran, and what it started from: paths of that run
    assert {k: trained[k] for k in recipe if k not in paths} == \
        {k: v for k, v in recipe.items() if k not in paths}
    # fine-tuned from the last epoch of recipes/real_model.py (seed 2), as the recipe says
    assert os.path.basename(trained['init_from']) == os.path.basename(recipe['init_from'])
    assert checkpoint['epoch'] - 1 == recipe['n_epochs']  # the last epoch is the one shipped


def test_the_real_model_carries_its_thresholds():
    checkpoint = read_checkpoint(REAL_DIR)
    for as_norm in (0, 50):
        record = model_threshold(checkpoint, as_norm)
        # measured on recordings of 10-20 s: the held-out utterances joined (long_trials.py)
        assert record['trials'] == 'docs/evaluation/trials_heldout_long.txt'
        assert record['n_trials'] == 3200
        # the EER point: the two rates within one target trial's step (80 target trials)
        assert abs(record['false_accept'] - record['false_reject']) <= 100 / 80
    assert model_threshold(checkpoint)['threshold'] == pytest.approx(REAL_THRESHOLD, abs=1e-4)


def test_the_real_model_is_calibrated_on_its_own_training_speakers():
    """tools/calibrate.py's record (docs/RESULTS.md sections 9 and 11): stage 1 on the model's
    training folders, never the held-out speakers it is measured on; stage 2 on train.py's 600
    validation utterances."""
    checkpoint = read_checkpoint(REAL_DIR)
    record = model_calibration(checkpoint)
    trained_on = checkpoint['train_settings']['train_feat_dir']
    assert record['data'] == f'{trained_on} (training speakers)'
    assert record['stage2_utterances'] == 600 and record['n_target'] > 5000
    assert record['seconds_range'][0] >= 1.0 and record['seconds_range'][1] <= 20.0


@needs_tutorial_db()
def test_the_real_model_identifies_the_tutorials_ten_test_speakers_from_their_wavs():
    result = run_script('evaluate.py', '--log_dir', REAL_DIR, '--test_wav_dir',
                        os.path.join(TUTORIAL_DB, 'test_wavs'))
    assert result.returncode == 0, result.stderr
    assert 'Identification accuracy (top-1 of 10): 100.00 % (10/10)' in result.stdout
    assert re.search(r'EER: 0\.00 % at threshold', result.stdout)
