"""evaluate.py end to end on a tiny trained model: both modes, scores file, plots, bad input."""
import functools
import glob
import importlib
import itertools
import os
import re
import shutil
import sys

import numpy as np
import pytest
import torch

import enroll
from conftest import TUTORIAL_DB, needs_tutorial_db, run_script
from dvector import cli
from dvector.checkpoint import COHORT_KEY, load_model
from dvector.embedding import embed_files
from dvector.enrollment import split_enroll_and_test
from dvector.fileio import load_torch, save_pickle, save_torch
from dvector.scoring import as_norm, as_norm_matrix, cohort_stats, cosine_scores
from dvector.whitening import whiten_checkpoint
from test_recordings import speech_wav

WAV_SPEAKER = 'wspk'


def make_trial_tree(root, n_speakers=3, n_files=4, n_bands=40, seed=3):
    """Feature pickles <root>/<spk>/f<k>.p, one VoxCeleb-style extracted file
    <root>/vox1/vidA_00001.p (listed as vox1/vidA/00001.wav) and one wav to extract now."""
    rng = np.random.default_rng(seed)
    rels = []
    for s in range(n_speakers):
        spk, profile = f'tr{s}', rng.normal(0, 2.0, n_bands)
        for k in range(n_files):
            feat = (profile + rng.normal(0, 1.0, (300, n_bands))).astype(np.float32)
            save_pickle({'feat': feat, 'label': spk}, os.path.join(root, spk, f'f{k}.p'))
            rels.append(f'{spk}/f{k}.p')
    save_pickle({'feat': rng.normal(0, 1.0, (300, n_bands)), 'label': 'vox1'},
                os.path.join(root, 'vox1', 'vidA_00001.p'))
    speech_wav(os.path.join(root, WAV_SPEAKER, 'w1.wav'))  # the detector keeps speech only
    return rels + ['vox1/vidA/00001.wav', f'{WAV_SPEAKER}/w1.wav']


def write_trials(path, rows):
    with open(path, 'w') as f:
        f.writelines(f'{label} {e} {t}\n' for label, e, t in rows)
    return str(path)


def speaker(rel):
    return rel.split('/')[0]


def all_ordered_pairs(rels):
    return [(int(speaker(a) == speaker(b)), a, b) for a, b in itertools.permutations(rels, 2)]


def read_scores(path):
    with open(path) as f:
        return [(float(s), int(label), e, t) for s, label, e, t in (line.split() for line in f)]


def assert_png(path):
    assert os.path.isfile(path) and os.path.getsize(path) > 10000, path
    with open(path, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'


def test_tutorial_mode_chunked_with_scores_and_plots(tmp_path, trained_run):
    log_dir, _, test_dir = trained_run
    scores, plot_dir = str(tmp_path / 'scores.txt'), str(tmp_path / 'plots')
    result = run_script('evaluate.py', '--log_dir', log_dir, '--test_dir', test_dir,
                        '--use_cuda', 'false', '--chunk_sec', '1.2', '--scores_out', scores,
                        '--plot_dir', plot_dir, '--p_targets', '0.01,0.05,0.1')
    assert result.returncode == 0, result.stderr
    out = result.stdout
    # 600 frames - 100 trimmed = 500 = 4 pieces of 120 + 20 (under half: dropped)
    assert '3 enrolled speakers, 12 test utterances, 1.2 s pieces' in out
    assert 'Identification accuracy (top-1 of 3): ' in out
    assert 'Verification trials: 36 (12 target, 24 non-target)' in out
    for text in ('EER: ', 'minDCF (p_target 0.01): ', 'minDCF (p_target 0.1): ',
                 'Threshold  False accept %  False reject %  Accuracy %', '0.9500', 'EER\n'):
        assert text in out
    rows = read_scores(scores)
    assert len(rows) == 36 and sum(r[1] for r in rows) == 12
    assert all(r[1] == (r[3].split('/')[-2] == r[2]) for r in rows)
    assert {r[3].rsplit('#', 1)[1] for r in rows} == {'1', '2', '3', '4'}
    for name in ('det_curve.png', 'score_histogram.png', 'speaker_similarity.png'):
        assert_png(os.path.join(plot_dir, name))


def test_tutorial_mode_saved_enrollments_match_on_the_fly(tmp_path, trained_run, monkeypatch,
                                                          capsys):
    log_dir, _, test_dir = trained_run
    emb = str(tmp_path / 'emb')
    device = torch.device('cpu')
    model, checkpoint = load_model(log_dir, 0, device)
    monkeypatch.setattr(enroll, 'test_frames', 100)
    enroll.enroll_per_spk(model, split_enroll_and_test(test_dir)[0], emb, checkpoint, device)
    outs = []
    for extra in ([], ['--embedding_dir', emb]):  # in-process: fast; the CLI is tested above
        path = str(tmp_path / f'scores{len(extra)}.txt')
        run_evaluate(monkeypatch, capsys, '--log_dir', log_dir, '--test_dir', test_dir,
                     '--scores_out', path, *extra, status=0)
        outs.append(read_scores(path))
    assert len(outs[0]) == 9 and sum(r[1] for r in outs[0]) == 3
    np.testing.assert_allclose([r[0] for r in outs[0]], [r[0] for r in outs[1]], atol=1e-5)


def test_trial_mode_scores_symmetric_and_identification(tmp_path, trained_run):
    log_dir = trained_run[0]
    root = str(tmp_path / 'db')
    rels = make_trial_tree(root)
    rows = all_ordered_pairs(rels)
    trials = write_trials(tmp_path / 'trials.txt', rows)
    scores, plot_dir = str(tmp_path / 'scores.txt'), str(tmp_path / 'plots')
    result = run_script('evaluate.py', '--log_dir', log_dir, '--trials', trials,
                        '--feat_dir', root, '--use_cuda', 'false', '--ident_enroll', '2',
                        '--scores_out', scores, '--plot_dir', plot_dir)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f'{len(rows)} trials, {len(rels)} files' in out
    assert 'Embedding 14 distinct entries (14 files)' in out
    # tr0..tr2 have 4 files (2 enroll, 2 tests each); vox1 and wspk have one file, no test
    assert 'first 2 sorted files of each of 5 speakers enroll, 6 tests' in out
    assert 'EER: ' in out and 'minDCF (p_target 0.05): ' in out
    written = read_scores(scores)
    assert [(r[1], r[2], r[3]) for r in written] == rows
    by_pair = {(e, t): s for s, _, e, t in written}
    for (e, t), s in by_pair.items():
        assert s == pytest.approx(by_pair[(t, e)], abs=2e-6)
    assert_png(os.path.join(plot_dir, 'det_curve.png'))
    assert_png(os.path.join(plot_dir, 'score_histogram.png'))


def test_long_trials_join_files_into_one_recording(monkeypatch, capsys, tmp_path, trained_run,
                                                   trial_db):
    """tools/long_trials.py writes enrollments and tests of several files joined with '+';
    evaluate.py scores such an entry as those files' trimmed features one after another."""
    root, rels = trial_db
    short = write_trials(tmp_path / 'short.txt', all_ordered_pairs(rels[:12]))  # tr0..tr2
    long_list = str(tmp_path / 'long.txt')
    result = run_script('tools/long_trials.py', '--trials', short, '--out', long_list,
                        '--enroll_files', '2', '--test_files', '2')
    assert result.returncode == 0, result.stderr
    assert '9 trials (3 target) of 3 speakers' in result.stdout
    with open(long_list) as f:
        lines = f.read().splitlines()
    assert lines[0] == '1 tr0/f0.p+tr0/f1.p tr0/f2.p+tr0/f3.p'
    assert '0 tr0/f0.p+tr0/f1.p tr1/f2.p+tr1/f3.p' in lines and len(lines) == 9
    scores = str(tmp_path / 'scores.txt')
    out = run_evaluate(monkeypatch, capsys, '--log_dir', trained_run[0], '--trials', long_list,
                       '--feat_dir', root, '--scores_out', scores, status=0)
    assert 'Embedding 6 distinct entries (12 files)' in out and '9 trials, 6 recordings' in out
    import evaluate
    from SR_Dataset import read_MFB
    model, _ = load_model(trained_run[0], 0, torch.device('cpu'))
    joined = [np.concatenate([read_MFB(os.path.join(root, p))[0] for p in entry.split('+')])
              for entry in ('tr0/f0.p+tr0/f1.p', 'tr1/f2.p+tr1/f3.p')]
    enroll_emb, test_emb = evaluate.embed_utterances(model, joined, 100, torch.device('cpu'))
    by_pair = {(e, t): s for s, _, e, t in read_scores(scores)}
    assert by_pair[('tr0/f0.p+tr0/f1.p', 'tr1/f2.p+tr1/f3.p')] == pytest.approx(
        float(enroll_emb @ test_emb), abs=1e-5)


def test_chunks_and_feature_paths():
    import evaluate
    from dvector.embedding import split_pieces
    feat = np.arange(500)[:, None]
    chunk = functools.partial(split_pieces, drop_short_last=True)  # evaluate.py's --chunk_sec
    assert [len(p) for p in chunk(feat, 300)] == [300, 200]  # kept: >= half
    assert [len(p) for p in chunk(feat, 120)] == [120] * 4  # 20 dropped
    assert [len(p) for p in chunk(feat, 0)] == [500]
    assert [len(p) for p in split_pieces(feat, 120)] == [120] * 4 + [20]  # enroll: all kept
    assert evaluate.feature_candidates('R', 'id1/vid/00001.wav') == [
        'R/id1/vid_00001.p', 'R/id1/vid/00001.p', 'R/id1/vid/00001.wav']
    assert evaluate.feature_candidates('R', 'spk/a.p') == ['R/spk/a.p']


# ---- bad input: one clear line, exit status 1 (run in-process to keep the tests fast) ----

def run_evaluate(monkeypatch, capsys, *args, status=1):
    """evaluate.py's main in this process; for status 1, the one error line it printed."""
    import evaluate
    importlib.reload(evaluate)  # fresh settings for every run
    monkeypatch.setattr(sys, 'argv', ['evaluate.py', '--use_cuda', 'false', *args])
    if status == 0:
        cli.run(evaluate.main)
        return capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        cli.run(evaluate.main)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 1 and len(err) == 1 and err[0].startswith('error: '), err
    return err[0]


@pytest.fixture
def trial_db(tmp_path):
    root = str(tmp_path / 'db')
    return root, make_trial_tree(root)


def test_missing_files_are_all_listed(monkeypatch, capsys, tmp_path, trained_run, trial_db):
    root, rels = trial_db
    missing = [f'gone/m{i:02d}.p' for i in range(25)]
    rows = [(1, rels[0], rels[1])] + [(0, rels[0], m) for m in missing]
    trials = write_trials(tmp_path / 't.txt', rows)
    err = run_evaluate(monkeypatch, capsys, '--log_dir', trained_run[0], '--trials', trials,
                       '--feat_dir', root)
    assert '25 files of the trial list not found' in err and '(25 in all)' in err
    assert 'gone/m00.p' in err and 'gone/m19.p' in err and 'gone/m20.p' not in err


def test_malformed_and_empty_lists(monkeypatch, capsys, tmp_path, trained_run, trial_db):
    root, rels = trial_db
    path = tmp_path / 't.txt'
    path.write_text(f'1 {rels[0]} {rels[1]}\n0 {rels[0]}\n\nx {rels[0]} {rels[1]}\n')
    err = run_evaluate(monkeypatch, capsys, '--log_dir', trained_run[0], '--trials', str(path),
                       '--feat_dir', root)
    assert 'malformed trial lines 2, 4' in err
    # joined entries: files of one speaker folder, each once, no empty part
    path.write_text('1 tr0/f0.p+tr0/f1.p tr0/f2.p\n0 tr0/f0.p+tr1/f1.p tr1/f2.p\n'
                    '1 tr0/f0.p+ tr0/f2.p\n1 tr0/f2.p tr0/f0.p+tr0/f0.p\n')
    err = run_evaluate(monkeypatch, capsys, '--log_dir', trained_run[0], '--trials', str(path),
                       '--feat_dir', root)
    assert 'malformed trial lines 2, 3, 4' in err and 'files joined with + are of one' in err
    # a side against itself scored 1 and went into the stored threshold; a BOM is no line
    path.write_text(f'\ufeff1 {rels[0]} {rels[1]}\n1 {rels[0]} ./{rels[0]}\n'
                    '1 tr0/f0.p+tr0/f1.p tr0/f1.p+tr0/f2.p\n', encoding='utf-8')
    err = run_evaluate(monkeypatch, capsys, '--log_dir', trained_run[0], '--trials', str(path),
                       '--feat_dir', root, '--store_threshold', 'true')
    assert 'trials 2, 3 (counting trials, not lines) read one file twice' in err
    os.symlink(os.path.join(root, 'tr0'), os.path.join(root, 'tr0_link'))
    os.link(os.path.join(root, rels[0]), os.path.join(root, 'tr0', 'hard.p'))
    for other in (os.path.join(root, rels[0]), 'tr0_link/' + rels[0].split('/')[1],
                  'tr0/hard.p'):
        path.write_text(f'0 {rels[0]} {rels[4]}\n1 {rels[0]} {other}\n')  # one file, two paths
        err = run_evaluate(monkeypatch, capsys, '--log_dir', trained_run[0], '--trials',
                           str(path), '--feat_dir', root)
        assert 'trials 2 (counting trials, not lines) read one file twice, by other' in err
    path.write_text('\n')
    err = run_evaluate(monkeypatch, capsys, '--log_dir', trained_run[0], '--trials', str(path),
                       '--feat_dir', root)
    assert 'no trials in the list' in err


def test_one_label_only(monkeypatch, capsys, tmp_path, trained_run, trial_db):
    root, rels = trial_db
    trials = write_trials(tmp_path / 't.txt', [(1, rels[0], rels[1]), (1, rels[2], rels[3])])
    err = run_evaluate(monkeypatch, capsys, '--log_dir', trained_run[0], '--trials', trials,
                       '--feat_dir', root)
    assert 'EER undefined: all 2 trials are target' in err


def test_repeated_trials_are_noted(monkeypatch, capsys, tmp_path, trained_run, trial_db):
    root, rels = trial_db
    trials = write_trials(tmp_path / 't.txt', [(1, rels[0], rels[1]), (0, rels[0], rels[4]),
                                               (1, rels[1], rels[0])])  # the first, reversed
    out = run_evaluate(monkeypatch, capsys, '--log_dir', trained_run[0], '--trials', trials,
                       '--feat_dir', root, status=0)
    assert '1 trials repeat an earlier one (the same two sides)' in out
    assert 'have a label that their speaker folders contradict' not in out
    trials = write_trials(tmp_path / 't.txt', [(0, rels[0], rels[1]), (0, rels[0], rels[4]),
                                               (1, rels[1], rels[5])])  # tr0, tr0 / tr0, tr1
    out = run_evaluate(monkeypatch, capsys, '--log_dir', trained_run[0], '--trials', trials,
                       '--feat_dir', root, status=0)
    assert '2 of 3 trials have a label that their speaker folders contradict' in out


def test_band_count_mismatch(monkeypatch, capsys, tmp_path, trained_run):
    root = str(tmp_path / 'db20')
    rels = make_trial_tree(root, n_bands=20)[:8]
    trials = write_trials(tmp_path / 't.txt', all_ordered_pairs(rels))
    err = run_evaluate(monkeypatch, capsys, '--log_dir', trained_run[0], '--trials', trials,
                       '--feat_dir', root)
    assert '20 feature bands' in err and 'trained on 40 (8 of ' in err
    for spk in ('a', 'b'):  # the same check in the tutorial mode
        for name in ('enroll', 'test'):
            save_pickle({'feat': np.zeros((300, 20)), 'label': spk},
                        os.path.join(tmp_path, 'test20', spk, name + '.p'))
    err = run_evaluate(monkeypatch, capsys, '--log_dir', trained_run[0],
                       '--test_dir', str(tmp_path / 'test20'))
    assert '20 feature bands' in err


def test_extraction_settings_differ_from_the_model(monkeypatch, capsys, tmp_path, trained_run,
                                                    trial_db):
    root, rels = trial_db
    checkpoint = load_torch(os.path.join(trained_run[0], 'checkpoint_1.pth'))
    checkpoint['feature_settings'] = dict(checkpoint['feature_settings'], sample_rate=8000)
    save_torch(checkpoint, str(tmp_path / 'run8k' / 'checkpoint_1.pth'))
    wav = f'{WAV_SPEAKER}/w1.wav'
    trials = write_trials(tmp_path / 't.txt', [(1, rels[0], rels[1]), (0, rels[0], wav)])
    err = run_evaluate(monkeypatch, capsys, '--log_dir', str(tmp_path / 'run8k'),
                       '--trials', trials, '--feat_dir', root)
    assert 'cannot make features from wav files for this model' in err \
        and 'sample_rate=16000' in err


@pytest.fixture(scope='module')
def whitened_run(tmp_path_factory, trained_run):
    """trained_run's checkpoints, the best one whitened: it holds a cohort of 4 speakers."""
    log_dir = str(tmp_path_factory.mktemp('whitened'))
    for path in glob.glob(os.path.join(trained_run[0], 'checkpoint_*.pth')):
        shutil.copy(path, log_dir)
    whiten_checkpoint(log_dir, 0, trained_run[1], torch.device('cpu'))
    return log_dir


def test_as_norm_scores_every_trial_against_the_checkpoint_cohort(monkeypatch, capsys, tmp_path,
                                                                 whitened_run, trial_db):
    root, rels = trial_db
    rels = rels[:12]  # the plain feature pickles
    trials = write_trials(tmp_path / 't.txt', all_ordered_pairs(rels))
    path = str(tmp_path / 'scores.txt')
    out = run_evaluate(monkeypatch, capsys, '--log_dir', whitened_run, '--trials', trials,
                       '--feat_dir', root, '--as_norm', '3', '--scores_out', path, status=0)
    assert 'AS-normalised with the top 3 scores against 4 training speakers' in out
    model, checkpoint = load_model(whitened_run, 0, torch.device('cpu'))
    emb = embed_files(model, [os.path.join(root, r) for r in rels], 100, torch.device('cpu'))
    mean, std = cohort_stats(emb, checkpoint[COHORT_KEY], 3)
    index = {rel: i for i, rel in enumerate(rels)}
    written = read_scores(path)
    assert len(written) == 12 * 11
    for score, _, e, t in written:
        i, j = index[e], index[t]
        expected = as_norm(emb[i] @ emb[j], (mean[i], std[i]), (mean[j], std[j]))
        assert score == pytest.approx(expected.item(), abs=1e-4)


def test_as_norm_in_tutorial_mode_leaves_identification_to_cosine(monkeypatch, capsys, tmp_path,
                                                                 whitened_run, trained_run):
    test_dir = trained_run[2]
    outs = {}
    for k in ('0', '2'):
        path = str(tmp_path / f'scores{k}.txt')
        out = run_evaluate(monkeypatch, capsys, '--log_dir', whitened_run, '--test_dir',
                           test_dir, '--as_norm', k, '--scores_out', path, status=0)
        outs[k] = (out, read_scores(path))
    ident = [line for line in outs['0'][0].splitlines() if 'Identification accuracy' in line]
    assert ident and ident[0] in outs['2'][0]
    model, checkpoint = load_model(whitened_run, 0, torch.device('cpu'))
    speakers = ['syn_t00', 'syn_t01', 'syn_t02']
    enrolled = embed_files(model, [f'{test_dir}/{s}/enroll.p' for s in speakers], 100,
                           torch.device('cpu'))
    tests = embed_files(model, [f'{test_dir}/{s}/test.p' for s in speakers], 100,
                        torch.device('cpu'))
    e_mean, e_std = cohort_stats(enrolled, checkpoint[COHORT_KEY], 2)
    t_mean, t_std = cohort_stats(tests, checkpoint[COHORT_KEY], 2)
    expected = as_norm(cosine_scores(tests, enrolled), (e_mean[None], e_std[None]),
                       (t_mean[:, None], t_std[:, None]))
    for (plain, label, spk, name), (normed, _, _, _) in zip(*[outs[k][1] for k in ('0', '2')]):
        m, n = speakers.index(name.split('/')[-2]), speakers.index(spk)
        assert label == int(m == n) and plain == pytest.approx(
            cosine_scores(tests[m:m + 1], enrolled[n:n + 1]).item(), abs=1e-4)
        assert normed == pytest.approx(expected[m, n].item(), abs=1e-4)


def test_as_norm_needs_a_cohort_of_enough_speakers(monkeypatch, capsys, tmp_path, trained_run,
                                                   whitened_run, trial_db):
    root, rels = trial_db
    trials = write_trials(tmp_path / 't.txt', all_ordered_pairs(rels[:8]))
    common = ['--trials', trials, '--feat_dir', root]
    err = run_evaluate(monkeypatch, capsys, '--log_dir', trained_run[0], *common,
                       '--as_norm', '50')
    assert '--as_norm 50' in err and 'no score cohort' in err and 'whitening.py' in err
    for k in ('50', '1'):
        err = run_evaluate(monkeypatch, capsys, '--log_dir', whitened_run, *common, '--as_norm', k)
        assert f'--as_norm {k}: give 2 to 4' in err


def test_verification_as_norm_scores_the_claim_against_the_cohort(tmp_path, whitened_run,
                                                                   trained_run):
    test_dir, emb = trained_run[2], str(tmp_path / 'emb')
    common = ['--log_dir', whitened_run, '--test_dir', test_dir, '--embedding_dir', emb]
    assert run_script('enroll.py', *common).returncode == 0
    claim = ['--enroll_speaker', 'syn_t00', '--test_speaker', 'syn_t01', '--thres', '1e-9']
    result = run_script('verification.py', *common, *claim, '--as_norm', '3')
    assert result.returncode == 0, result.stderr
    assert 'AS-normalised with the top 3 scores against 4 training speakers' in result.stdout
    score = float(re.search(r'Score : (-?\d+\.\d{4})', result.stdout).group(1))
    model, checkpoint = load_model(whitened_run, 0, torch.device('cpu'))
    enrolled = load_torch(f'{emb}/syn_t00.pth')  # (1, E), what enroll.py wrote
    test = embed_files(model, [f'{test_dir}/syn_t01/test.p'], 100, torch.device('cpu'))
    expected = as_norm_matrix(cosine_scores(test, enrolled), test, enrolled,
                              checkpoint[COHORT_KEY], 3)
    assert score == pytest.approx(expected.item(), abs=1e-3)
    assert ('Result : Accept' if score > 1e-9 else 'Result : Reject') in result.stdout
    result = run_script('verification.py', *common, *claim, '--as_norm', '9')
    assert result.returncode != 0 and '--as_norm 9: give 2 to 4' in result.stderr
    assert 'Score :' not in result.stdout


# ---- the real DB slice (skipped when ../shared/tutorial_db is absent) ----

@needs_tutorial_db()
def test_heldout_trial_list_parses_and_resolves():
    import evaluate
    rows = evaluate.read_trials(os.path.join(TUTORIAL_DB, 'trials_heldout.txt'))
    assert len(rows) == 12640 and sum(r[0] for r in rows) == 2640
    rels = sorted({p for _, e, t in rows for p in (e, t)})
    assert len(evaluate.resolve_files(TUTORIAL_DB, rels)) == 480


@needs_tutorial_db()
def test_wav_extracted_on_the_fly_matches_the_shipped_features():
    from DB_wav_reader import read_audio
    from dvector.feature_paths import feature_name
    from dvector.features import at_db_level, fast_logfbank
    from dvector.recordings import wav_features
    from SR_Dataset import read_MFB, trim_silence
    wav = os.path.join(TUTORIAL_DB, 'test_wavs', '230M4087', 'test.wav')
    shipped, _ = read_MFB(os.path.join(TUTORIAL_DB, 'feat_logfbank_nfilt40', 'test',
                                       '230M4087', 'test.p'))
    audio = read_audio(wav)
    np.testing.assert_allclose(trim_silence(fast_logfbank(audio)), shipped, atol=1e-4)
    # a recording is first set to the DB's speech level (this one is 0.3 dB under it)
    np.testing.assert_allclose(wav_features(wav, vad=False),
                               trim_silence(fast_logfbank(at_db_level(audio))), atol=1e-5)
    assert feature_name('test_wavs/230M4087/test.wav')[0] == '230M4087'
    assert feature_name('id10270/5r0dWxy17C8/00001.wav')[0] == 'id10270'
