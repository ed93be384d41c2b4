"""Calibrated, duration-aware scores (dvector/calibration.py, tools/calibrate.py), the decisions
at an operating point (verification.py, identification.py) and the calibration metrics
(dvector/metrics.py, evaluate.py)."""
import math
import os
import re
import shutil

import numpy as np
import pytest
import torch

from configure import SetupError
from conftest import assert_one_line_error, run_script
from dvector.calibration import (
    CALIBRATION_KEY,
    OperatingPoint,
    apply_calibration,
    bayes_threshold,
    check_operating_point,
    decide,
    fit_calibration,
    identify,
    llr_words,
    model_calibration,
    score_threshold,
    store_calibration,
)
from dvector.checkpoint import read_checkpoint
from dvector.fileio import load_torch, save_torch
from dvector.metrics import actual_dcf, cllr, compute_min_dcf, min_cllr, pav_llrs
from dvector.threshold import THRESHOLD_KEY, threshold_record


def duration_trials(n=4000, seed=0):
    """Trials whose scores drop and spread with shorter speech, as a model's do: (scores,
    labels, seconds_a, seconds_b)."""
    rng = np.random.default_rng(seed)
    seconds_a = np.exp(rng.uniform(0, np.log(20), n))
    seconds_b = np.exp(rng.uniform(0, np.log(20), n))
    labels = rng.random(n) < 0.3
    shorter = np.minimum(seconds_a, seconds_b)
    centre = np.where(labels, 0.25 + 0.08 * np.log(shorter), 0.05)
    scores = centre + rng.normal(0, 0.12, n)
    return scores, labels, seconds_a, seconds_b


def test_metrics_of_llrs_whose_cllr_is_known():
    labels = np.array([1, 1, 0, 0])
    assert cllr(np.zeros(4), labels) == pytest.approx(1.0)            # no information: 1 bit
    right = np.log(3) * np.array([1, 1, -1, -1])                     # 3:1 for the truth
    assert cllr(right, labels) == pytest.approx(math.log2(4 / 3))
    assert cllr(-right, labels) == pytest.approx(2.0)                # 3:1 against: 2 bits
    # PAV: separable scores get infinite LLRs of the right sign, so min Cllr is 0
    assert min_cllr([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == pytest.approx(0.0)
    # sorted labels 0 1 0 1: the middle two pool to a posterior of 1/2, the prior's: LLR 0
    assert list(pav_llrs([0.9, 0.1, 0.5, 0.4], [1, 0, 0, 1])) == [np.inf, -np.inf, 0.0, 0.0]
    # actual DCF at p 0.5: one miss of two targets, no false accept -> (0.5 * 0.5) / 0.5
    assert actual_dcf([2.0, -1.0, -3.0, -2.0], labels, 0.5) == (0.5, 0.5, 0.0)


def test_gaussian_llrs_are_calibrated_and_a_shifted_copy_is_not():
    rng = np.random.default_rng(1)
    mu, n = 2.0, 20000  # targets N(mu, 2 mu), non-targets N(-mu, 2 mu): exact LLRs
    llrs = np.r_[rng.normal(mu, math.sqrt(2 * mu), n), rng.normal(-mu, math.sqrt(2 * mu), n)]
    labels = np.r_[np.ones(n), np.zeros(n)]
    assert cllr(llrs, labels) == pytest.approx(min_cllr(llrs, labels), rel=0.02)
    assert actual_dcf(llrs, labels, 0.01)[0] == pytest.approx(compute_min_dcf(llrs, labels,
                                                                              0.01), rel=0.1)
    assert cllr(llrs + 3, labels) > 1.3 * min_cllr(llrs, labels)


def test_the_fit_learns_how_scores_move_with_length():
    scores, labels, a, b = duration_trials()
    record = fit_calibration(scores, labels, a, b, {'data': 'synthetic'})
    test = duration_trials(seed=2)
    llrs = apply_calibration(record, test[0], test[2], test[3])
    shorter = np.minimum(test[2], test[3])
    for band in (shorter < 2, (shorter >= 2) & (shorter < 6), shorter >= 6):
        assert cllr(llrs[band], test[1][band]) < 1.2 * min_cllr(test[0][band], test[1][band])
    score_only = fit_calibration(scores, labels, np.ones_like(a), np.ones_like(b))
    plain = apply_calibration(score_only, test[0], np.ones_like(a), np.ones_like(b))
    longer = shorter >= 6  # one calibration for all lengths misjudges the long trials
    assert cllr(llrs[longer], test[1][longer]) < 0.85 * cllr(plain[longer], test[1][longer])
    assert record['n_target'] == labels.sum() and record['data'] == 'synthetic'
    assert 1.0 <= record['seconds_range'][0] < record['seconds_range'][1] <= 20.0


def test_the_operating_point_and_its_refusals():
    assert bayes_threshold(0.5) == 0.0
    assert bayes_threshold(0.01) == pytest.approx(math.log(99))
    assert bayes_threshold(0.5, c_miss=1, c_fa=10) == pytest.approx(math.log(10))
    for bad in (0, 1, 1.5, -0.1, float('nan')):
        with pytest.raises(SetupError, match=f'p_target={bad}: a prior probability lies '
                                             'strictly between 0 and 1'):
            check_operating_point(bad)
    with pytest.raises(SetupError, match='c_miss=0: a cost is a positive'):
        check_operating_point(0.5, c_miss=0)


def test_llr_words():
    assert llr_words(math.log(40)) == ('40 times more likely the claimed speaker than another '
                                       'speaker')
    assert llr_words(-math.log(2.5)) == ('2.5 times more likely another speaker than the '
                                         'claimed speaker')
    assert llr_words(0.01) == 'about as likely the claimed speaker as another speaker'
    assert llr_words(50.0).startswith('over a million times more likely the claimed')


def calibrated_checkpoint() -> dict:
    scores, labels, a, b = duration_trials()
    return {CALIBRATION_KEY: {'cosine': fit_calibration(scores, labels, a, b,
                                                        {'data': 'synthetic'})},
            THRESHOLD_KEY: {'cosine': threshold_record(0.6, 1, 1, 'long trials', 10)}}


def test_store_and_read_round_trip(tmp_path):
    path = str(tmp_path / 'checkpoint_1.pth')
    save_torch({'state_dict': {'w': torch.ones(2)}, 'epoch': 2}, path)
    record = calibrated_checkpoint()[CALIBRATION_KEY]['cosine']
    store_calibration(path, record, scored=load_torch(path))
    stored = load_torch(path)  # weights_only: the record is plain values
    assert model_calibration(stored) == record and stored['epoch'] == 2
    assert torch.equal(stored['state_dict']['w'], torch.ones(2))
    assert os.listdir(tmp_path) == ['checkpoint_1.pth']  # no temporary left
    for bad in ({**record, 'weights': record['weights'][:3]}, {**record, 'terms': ['x']},
                {**record, 'weights': [math.nan] * 6}, 'text'):
        assert model_calibration({CALIBRATION_KEY: {'cosine': bad}}) is None


def test_decisions_rest_on_the_calibration_the_users_threshold_or_the_stored_one():
    checkpoint = calibrated_checkpoint()
    record = checkpoint[CALIBRATION_KEY]['cosine']
    at = score_threshold(record, 0.0, 3.0, 10.0)
    assert apply_calibration(record, [at], [3.0], [10.0])[0] == pytest.approx(0.0, abs=1e-9)
    above, below = decide(at + 0.01, checkpoint, (3.0, 10.0)), decide(at - 0.01, checkpoint,
                                                                      (3.0, 10.0))
    assert above.accept and not below.accept and above.llr > 0 > below.llr
    assert 'Bayes threshold of p_target 0.5, c_miss 1, c_fa 1 (the default)' in above.basis
    strict = decide(at + 0.01, checkpoint, (3.0, 10.0), point=OperatingPoint(0.01))
    assert not strict.accept and 'LLR 4.60' in strict.basis
    # shorter speech: the same score means more (scores fall with length)
    assert decide(0.3, checkpoint, (1.5, 1.5)).llr > decide(0.3, checkpoint, (15, 15)).llr
    mine = decide(0.3, checkpoint, (3.0, 10.0), thres=0.99)
    assert not mine.accept and mine.basis.startswith("0.99 (--thres): the user's")
    assert mine.llr is not None  # the LLR is still reported
    plain = decide(0.65, {THRESHOLD_KEY: checkpoint[THRESHOLD_KEY]}, (3.0, 10.0))
    assert plain.accept and plain.llr is None and 'no calibration' in plain.basis
    unknown = decide(0.3, checkpoint, (None, 3.0))
    assert 'unrecorded length counted as 20 s' in unknown.basis


def test_open_set_identification():
    checkpoint = calibrated_checkpoint()
    seconds = (3.0, {'a': 10.0, 'b': 10.0})
    best, decision = identify([0.75, 0.1], ['a', 'b'], checkpoint, seconds)
    assert best == 'a' and decision.accept
    best, decision = identify([0.02, 0.05], ['a', 'b'], checkpoint, seconds)
    assert best == 'b' and not decision.accept  # the answer: none of the enrolled speakers
    stored_only = {THRESHOLD_KEY: checkpoint[THRESHOLD_KEY]}
    assert not identify([0.5, 0.55], ['a', 'b'], stored_only, seconds)[1].accept  # < 0.6
    assert identify([0.5, 0.55], ['a', 'b'], {}, seconds) == ('b', None)  # closed, as before


def test_calibrate_stores_what_verification_identification_and_evaluate_use(tmp_path,
                                                                           trained_run):
    log_dir, _, test_dir = trained_run
    run = str(tmp_path / 'run')
    shutil.copytree(log_dir, run)
    fit = ['tools/calibrate.py', '--log_dir', run, '--min_seconds', '0.5', '--max_seconds',
           '1.5', '--segments_per_speaker', '3', '--cache_dir', str(tmp_path / 'cache')]
    result = run_script(*fit)
    assert result.returncode == 0, result.stderr
    assert 'validation utterances of train.py\'s split recovered' in result.stdout
    record = model_calibration(read_checkpoint(run))
    assert record['n_target'] > 0 and record['seconds_range'][1] <= 1.5
    again = run_script(*fit)  # a refit: the segments from the cache, the record replaced
    assert again.returncode == 0 and 'read from' in again.stdout
    assert 'it replaces the calibration' in again.stdout
    cached = sorted((tmp_path / 'cache').iterdir())[0]
    saved = cached.read_bytes()
    good = load_torch(str(cached))
    nan = good['embeddings'].clone()
    nan[0, 0] = float('nan')
    for bad in ([1, 2], {**good, 'embeddings': nan},  # "Cllr nan", and stored
                {**good, 'embeddings': torch.randn(len(nan), 7)},
                {**good, 'seconds': ['a'] * len(nan)},  # a ValueError traceback
                {**good, 'seconds': [1e300] * len(nan)},  # stored as "1e300 s of speech"
                {**good, 'speaker': good['speaker'][::-1]},  # not the plan's order
                {**good, 'speaker': good['speaker'][1:], 'seconds': good['seconds'][1:],
                 'embeddings': good['embeddings'][1:]},  # cut short: fitted on the rest
                {'embeddings': nan[:0], 'speaker': [], 'seconds': []}):  # np.bincount failed
        torch.save(bad, cached)  # a file of the cache's name that calibrate.py did not write
        assert_one_line_error(run_script(*fit), f'{cached}: not a segment cache that '
                                                'calibrate.py wrote; delete it')
    torch.save({**good, 'embeddings': good['embeddings'].requires_grad_()}, cached)
    assert run_script(*fit).returncode == 0  # was a traceback; the same d-vectors, so read
    cached.write_bytes(saved)
    (tmp_path / 'afile').write_text('x')
    assert_one_line_error(run_script(*fit[:-1], str(tmp_path / 'afile')),
                          '--cache_dir', 'afile', 'not a folder')
    emb = str(tmp_path / 'emb')
    common = ['--log_dir', run, '--test_dir', test_dir]
    assert run_script('enroll.py', *common, '--embedding_dir', emb).returncode == 0
    result = run_script('verification.py', *common, '--embedding_dir', emb, '--enroll_speaker',
                        'syn_t00', '--test_speaker', 'syn_t01', '--p_target', '0.01')
    assert result.returncode == 0, result.stderr
    assert re.search(r'LLR : -?\d+\.\d\d \(.* times more likely|LLR : .*about as likely',
                     result.stdout)
    assert 'the Bayes threshold of p_target 0.01, c_miss 1, c_fa 1;' in result.stdout
    result = run_script('evaluate.py', *common, '--plot_dir', str(tmp_path / 'plots'))
    assert result.returncode == 0, result.stderr
    assert re.search(r'Cllr: [\d.]+ bits \(min Cllr [\d.]+\)', result.stdout)
    assert re.search(r'actual DCF \(p_target 0.01\): [\d.]+ \(minDCF [\d.]+\)', result.stdout)
    assert re.search(r'\n +all +9 +', result.stdout)  # the band table's total row
    assert os.path.isfile(tmp_path / 'plots' / 'calibration.png')
    # open set: a calibration that calls any score below 0.999 another speaker
    strict = {**record, 'weights': [100.0, -99.9, 0.0, 0.0, 0.0, 0.0]}
    checkpoint = read_checkpoint(run)
    store_calibration(checkpoint['path'], strict, scored=checkpoint)
    result = run_script('identification.py', *common, '--embedding_dir', emb, '--spk_list',
                        'syn_t00', '--test_speaker', 'syn_t01')
    assert result.returncode == 0, result.stderr
    assert 'Predicted speaker : none of the enrolled speakers\nResult : False' in result.stdout
    assert re.search(r'Best match : syn_t00\nScore : [\d.]+\nLLR : -[\d.]+ \(', result.stdout)


def test_bad_operating_point_settings_are_one_line():
    result = run_script('verification.py', '--p_target', '1.5')
    assert result.returncode == 1
    assert result.stderr.strip() == 'error: --p_target 1.5: expected a number > 0 and < 1'
    result = run_script('tools/calibrate.py', '--train_feat_dir', 'no_such_folder')
    assert result.returncode == 1
    assert result.stderr.strip() == 'error: --train_feat_dir no_such_folder: not a folder'
    assert '=> loading checkpoint' not in result.stdout  # refused before the model is read



def test_llr_words_name_whom_the_llr_is_for():
    """identification.py's best match is not a claimed speaker: its name stands in the words."""
    assert llr_words(math.log(40), 'alice') == '40 times more likely alice than another speaker'
    assert llr_words(-math.log(40), 'alice').endswith('another speaker than alice')


def test_an_operating_point_an_uncalibrated_model_cannot_use_is_said_to_be_unused():
    """The demo model has a stored threshold and no calibration: --p_target and the costs
    changed nothing, without a word."""
    unused = 'p_target 0.001, c_miss 1000, c_fa 1 not used'
    result = run_script('verification.py', '--p_target', '0.001', '--c_miss', '1000')
    assert result.returncode == 0, result.stderr
    assert f'this model has no calibration ({unused})' in result.stdout
    result = run_script('identification.py', '--p_target', '0.001', '--c_miss', '1000')
    assert result.returncode == 0, result.stderr
    assert f'note: {unused}: this model has no calibration' in result.stdout
    assert 'not used' not in run_script('verification.py').stdout  # the default: no note
