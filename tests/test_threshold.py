"""The verification threshold stored with its model (dvector/threshold.py, evaluate.py
--store_threshold, verification.py's thres = 0)."""
import os
import re
import shutil

import pytest
import torch

from configure import SetupError
from conftest import run_script
from dvector.checkpoint import read_checkpoint
from dvector.fileio import load_torch, save_torch
from dvector.threshold import (
    THRESHOLD_KEY,
    choose_threshold,
    describe,
    model_threshold,
    store_threshold,
    threshold_record,
)


def test_a_given_threshold_wins_and_zero_takes_the_models(tmp_path):
    record = threshold_record(0.61, 4.0, 4.5, 'trials.txt', 1200)
    checkpoint = {THRESHOLD_KEY: {'cosine': record}, 'path': 'm/checkpoint_3.pth'}
    assert choose_threshold(0.7, checkpoint) == (0.7, '0.7 (--thres)')
    value, text = choose_threshold(0, checkpoint)
    assert value == 0.61 and text == describe(record)
    assert text.startswith("0.6100 (this model's EER threshold on trials.txt, 1200 trials: "
                           '4.0 % false accepts, 4.5 % false rejects)')
    with pytest.raises(SetupError, match=r'm/checkpoint_3.pth: no threshold stored for '
                                         r'as_norm 50 scoring; give --thres.*--store_threshold'):
        choose_threshold(0, checkpoint, as_norm=50)
    assert choose_threshold(0, {})[0] == 0.95  # none stored: the class's


def test_a_damaged_record_counts_as_none():
    for bad in ({'threshold': float('nan')}, {'threshold': 'x'}, 'text', None):
        assert model_threshold({THRESHOLD_KEY: {'cosine': bad}}) is None


def test_storing_keeps_the_rest_of_the_checkpoint(tmp_path):
    path = str(tmp_path / 'checkpoint_1.pth')
    save_torch({'state_dict': {'w': torch.ones(2)}, 'epoch': 2}, path)
    store_threshold(path, threshold_record(0.5, 1, 2, 't', 10))
    store_threshold(path, threshold_record(3.2, 1, 2, 't', 10), as_norm=50)
    stored = load_torch(path)
    assert stored['epoch'] == 2 and torch.equal(stored['state_dict']['w'], torch.ones(2))
    assert model_threshold(stored)['threshold'] == 0.5
    assert model_threshold(stored, 50)['threshold'] == 3.2
    assert [f for f in os.listdir(tmp_path)] == ['checkpoint_1.pth']  # no temporary left


def test_evaluate_stores_the_eer_threshold_that_verification_then_uses(tmp_path, trained_run):
    log_dir, _, test_dir = trained_run
    run = str(tmp_path / 'run')
    shutil.copytree(log_dir, run)
    common = ['--log_dir', run, '--test_dir', test_dir]
    emb = str(tmp_path / 'emb')
    assert run_script('enroll.py', *common, '--embedding_dir', emb).returncode == 0
    claim = [*common, '--embedding_dir', emb, '--enroll_speaker', 'syn_t00',
             '--test_speaker', 'syn_t00']
    # none stored yet (a model just trained): the class's threshold, and how to measure one
    result = run_script('verification.py', *claim)
    assert result.returncode == 0, result.stderr
    assert re.search(r"Threshold : 0.95 \(the class's: this model has no threshold of its own "
                     r'yet; evaluate.py --store_threshold true', result.stdout)
    result = run_script('evaluate.py', *common, '--store_threshold', 'true')
    assert result.returncode == 0, result.stderr
    eer_thres = float(re.search(r'EER: [\d.]+ % at threshold (-?[\d.]+)', result.stdout).group(1))
    assert f'Threshold {eer_thres:.4f} stored in ' in result.stdout
    assert model_threshold(read_checkpoint(run))['threshold'] == pytest.approx(eer_thres,
                                                                               abs=1e-4)
    # the enrollments stay valid (the threshold is not part of the model) and use it now
    result = run_script('verification.py', *claim)
    assert result.returncode == 0, result.stderr
    assert re.search(rf"Threshold : {eer_thres:.4f} \(this model's EER threshold on "
                     rf"{re.escape(test_dir)} \(tutorial test set\), 9 trials", result.stdout)


def test_whitening_drops_a_threshold_measured_before_it(tmp_path, trained_run):
    log_dir, train_dir, _ = trained_run
    run = str(tmp_path / 'run')
    shutil.copytree(log_dir, run)
    store_threshold(read_checkpoint(run)['path'], threshold_record(0.5, 1, 1, 't', 10))
    result = run_script('tools/whitening.py', '--log_dir', run, '--train_feat_dir', train_dir)
    assert result.returncode == 0, result.stderr
    assert 'measured before this whitening and is dropped' in result.stdout
    assert model_threshold(read_checkpoint(run)) is None


def test_exercise_4_marks_the_chosen_threshold(capsys):
    import numpy as np

    import evaluate
    scores, labels = np.array([0.9, 0.8, 0.3, 0.1]), np.array([1, 1, 0, 0])
    eer_thres = evaluate.report_verification(scores, labels, None)
    assert 'chosen' not in capsys.readouterr().out
    evaluate.report_verification(scores, labels, eer_thres)
    assert re.search(rf'{eer_thres:9.4f} .*  EER, chosen\n', capsys.readouterr().out)
    evaluate.report_verification(scores, labels, 0.85)
    assert re.search(r'   0.8500 .*  chosen\n', capsys.readouterr().out)
