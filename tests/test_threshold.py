"""The verification threshold stored with its model (dvector/threshold.py, evaluate.py
--store_threshold, verification.py's thres = 0)."""
import os
import re
import shutil

import pytest
import torch

from configure import SetupError
from conftest import run_script
from dvector.checkpoint import WHITENING_KEY, read_checkpoint
from dvector.fileio import load_torch, save_torch
from dvector.threshold import (
    THRESHOLD_KEY,
    choose_threshold,
    describe,
    eer_record,
    fit_validation_threshold,
    model_threshold,
    pair_trials,
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
    scored = load_torch(path)
    store_threshold(path, threshold_record(0.5, 1, 2, 't', 10), scored=scored)
    store_threshold(path, threshold_record(3.2, 1, 2, 't', 10), as_norm=50, scored=scored)
    stored = load_torch(path)
    assert stored['epoch'] == 2 and torch.equal(stored['state_dict']['w'], torch.ones(2))
    assert model_threshold(stored)['threshold'] == 0.5
    assert model_threshold(stored, 50)['threshold'] == 3.2
    assert [f for f in os.listdir(tmp_path)] == ['checkpoint_1.pth']  # no temporary left


def test_a_threshold_of_another_model_is_never_stored(tmp_path):
    """tools/whitening.py rewrote the checkpoint while evaluate.py was scoring the model as
    it was: the threshold measured on the old model is refused, the file left as it is."""
    path = str(tmp_path / 'checkpoint_1.pth')
    save_torch({'state_dict': {'w': torch.ones(2)}, 'epoch': 2}, path)
    scored = load_torch(path)
    save_torch({'state_dict': {'w': torch.ones(2)}, 'epoch': 2,
                WHITENING_KEY: {'matrix': torch.eye(2)}}, path)  # the whitening, meanwhile
    before = open(path, 'rb').read()
    with pytest.raises(SetupError, match='checkpoint_1.pth changed while it was being measured'):
        store_threshold(path, threshold_record(0.5, 1, 2, 't', 10), scored=scored)
    assert open(path, 'rb').read() == before


def test_evaluate_stores_the_eer_threshold_that_verification_then_uses(tmp_path, trained_run):
    log_dir, _, test_dir = trained_run
    run = str(tmp_path / 'run')
    shutil.copytree(log_dir, run)
    common = ['--log_dir', run, '--test_dir', test_dir]
    emb = str(tmp_path / 'emb')
    assert run_script('enroll.py', *common, '--embedding_dir', emb).returncode == 0
    claim = [*common, '--embedding_dir', emb, '--enroll_speaker', 'syn_t00',
             '--test_speaker', 'syn_t00']
    # a model just trained decides at the threshold train.py fitted on its validation pairs
    result = run_script('verification.py', *claim)
    assert result.returncode == 0, result.stderr
    assert re.search(r"Threshold : -?[\d.]+ \(this model's EER threshold on pairs of 6 held-out "
                     r"utterances of 4 training speakers \(train.py's validation\), 15 trials",
                     result.stdout)
    # none stored (a model made otherwise): the class's threshold, and how to measure one
    path = read_checkpoint(run)['path']
    save_torch({k: v for k, v in load_torch(path).items() if k != THRESHOLD_KEY}, path)
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
    checkpoint = read_checkpoint(run)
    store_threshold(checkpoint['path'], threshold_record(0.5, 1, 1, 't', 10), scored=checkpoint)
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


def test_pair_trials_score_every_pair_once_and_label_same_speaker_pairs():
    embeddings = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.6, 0.8],
                                                             [0.0, 1.0]]), dim=1)
    scores, labels = pair_trials(embeddings, ['a', 'b', 'a'])
    # pairs (0, 1), (0, 2), (1, 2)
    assert scores.tolist() == pytest.approx([0.6, 0.0, 0.8])
    assert labels.tolist() == [False, True, False]


def test_eer_record_gives_the_rates_of_the_decisions_at_its_threshold():
    scores, labels = [0.9, 0.7, 0.5, 0.4, 0.3, 0.1], [1, 0, 1, 0, 0, 0]
    record = eer_record(scores, labels, 'six trials')
    accepted = [s > record['threshold'] for s in scores]
    false_accept = 100 * sum(a for a, lab in zip(accepted, labels) if not lab) / 4
    false_reject = 100 * sum(not a for a, lab in zip(accepted, labels) if lab) / 2
    assert (record['false_accept'], record['false_reject']) == (false_accept, false_reject)
    assert record['trials'] == 'six trials' and record['n_trials'] == 6


def test_no_validation_threshold_without_pairs_of_both_kinds(tmp_path):
    device = torch.device('cpu')
    for speakers in (['a', 'b', 'c'], ['a', 'a']):  # no target pair; no non-target pair
        assert fit_validation_threshold(str(tmp_path), 1, ['x.p'] * len(speakers), speakers,
                                        device) is None  # before reading anything


def test_training_stores_the_eer_threshold_of_its_validation_pairs(trained_run, monkeypatch):
    """Issue 30 item 13b: a model just trained decided at the class's 0.95 (README's impostor
    example was accepted). The stored record is the EER threshold of every pair of the
    validation utterances, with the error rates of its decisions on them."""
    import numpy as np

    import train
    from dvector.checkpoint import inference_model
    from dvector.embedding import embed_files
    from dvector.metrics import compute_eer
    log_dir, train_dir, _ = trained_run
    checkpoint = read_checkpoint(log_dir)
    record = model_threshold(checkpoint)
    assert record['trials'] == ("pairs of 6 held-out utterances of 4 training speakers "
                                "(train.py's validation)") and record['n_trials'] == 15
    monkeypatch.setattr(train, 'seed', 1)  # the split train.py made (conftest: val_ratio 25)
    _, valid, _ = train.split_train_dev(train_dir, 25)
    model = inference_model(checkpoint, torch.device('cpu'))
    embeddings = embed_files(model, list(valid['filename']), 100, torch.device('cpu'))
    speakers = list(valid['speaker_id'])
    scores, labels = [], []
    for i in range(len(speakers)):
        for j in range(i + 1, len(speakers)):
            scores.append(float(embeddings[i] @ embeddings[j]))
            labels.append(speakers[i] == speakers[j])
    scores, labels = np.array(scores), np.array(labels)
    assert record['threshold'] == pytest.approx(compute_eer(scores, labels)[1], abs=1e-6)
    accepted = scores > record['threshold']
    assert record['false_accept'] == pytest.approx(100 * accepted[~labels].mean())
    assert record['false_reject'] == pytest.approx(100 * (~accepted[labels]).mean())
