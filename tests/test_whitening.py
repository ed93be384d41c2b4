"""whitening.py: WCCN fitted on training speakers, folded into fc0, stored in the checkpoint."""
import glob
import shutil

import pytest
import torch

from configure import SetupError
from conftest import run_script
from DB_wav_reader import read_feats_structure
from dvector.checkpoint import COHORT_KEY, WHITENING_KEY, load_model, read_checkpoint
from dvector.embedding import embed_files, embed_pieces, embed_utterances, l2_norm
from dvector.whitening import embed_pooled, fit_layer, fit_wccn, fit_wccn_lda
from model import build_model
from model.fuse import JointWhitening, fold_whitening


def clustered(n_speakers=6, per=40, dim=8, seed=0):
    """Speaker means plus correlated within-speaker noise."""
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(dim, dim, generator=g)
    means = 3 * torch.randn(n_speakers, dim, generator=g)
    x = means.repeat_interleave(per, 0) + torch.randn(n_speakers * per, dim, generator=g) @ mix
    return x, [f's{i}' for i in range(n_speakers) for _ in range(per)]


def within_covariance(x, speakers):
    labels = sorted(set(speakers))
    idx = torch.tensor([labels.index(s) for s in speakers])
    means = torch.stack([x[idx == k].mean(0) for k in range(len(labels))])
    d = x - means[idx]
    return d.T @ d / len(x)


def speaker_dvectors(model, train_dir, test_frames):
    """(S, E) each training speaker's normalised sum of its utterance embeddings (sorted)."""
    table = read_feats_structure(train_dir)
    owners = list(table['speaker_id'])
    utterances = embed_files(model, list(table['filename']), test_frames, torch.device('cpu'))
    return l2_norm(torch.stack([utterances[[i for i, o in enumerate(owners) if o == s]].sum(0)
                                for s in sorted(set(owners))]))


def test_wccn_whitens_the_within_speaker_covariance():
    x, speakers = clustered()
    w = fit_wccn(x, speakers, reg=0.0)
    y = (x - w['mean']) @ w['matrix'].T
    assert torch.allclose(within_covariance(y, speakers), torch.eye(8), atol=1e-4)
    assert torch.allclose(y.mean(0), torch.zeros(8), atol=1e-4)
    # regularised: the within covariance is shrunk but no longer exactly the identity
    y2 = (x - w['mean']) @ fit_wccn(x, speakers, reg=0.5)['matrix'].T
    eig = torch.linalg.eigvalsh(within_covariance(y2, speakers))
    assert eig.max() < 1.0 and eig.min() > 0


def test_wccn_refuses_too_few_speakers():
    with pytest.raises(SetupError, match='at least 2 speakers'):
        fit_wccn(torch.randn(5, 4), ['a'] * 5)
    with pytest.raises(SetupError, match='--reg -0.1'):
        fit_wccn(*clustered(), reg=-0.1)
    with pytest.raises(SetupError, match='--pooling_reg -1'):
        fit_wccn_lda(*clustered(), dims=2, reg=-1)


def test_folded_fc0_gives_the_whitened_embedding():
    model = build_model('resnet18', 8, 3).eval()
    x, speakers = clustered(dim=8)
    w = fit_wccn(x, speakers, reg=0.1)
    batch = torch.randn(4, 1, 40, 60)
    with torch.no_grad():
        plain = model(batch)[0]
        folded = fold_whitening(model, w)(batch)[0]
    assert torch.allclose(folded, (plain - w['mean']) @ w['matrix'].T, atol=1e-4)


def test_wccn_lda_whitens_within_and_orders_between_speaker_variance():
    x, speakers = clustered(n_speakers=6, dim=8)
    w = fit_wccn_lda(x, speakers, dims=4, reg=0.0)
    assert w['layer'] == 'pooling' and w['matrix'].shape == (4, 8)
    y = (x - w['mean']) @ w['matrix'].T                                        # (N, 4)
    assert torch.allclose(within_covariance(y, speakers), torch.eye(4), atol=1e-3)
    labels = sorted(set(speakers))
    means = torch.stack([y[[s == k for s in speakers]].mean(0) for k in labels])
    between = torch.cov(means.T, correction=0)
    spread = between.diagonal()
    assert torch.allclose(between, torch.diag(spread), atol=1e-3)  # uncorrelated directions
    assert (spread[:-1] >= spread[1:]).all() and spread[-1] > 1    # most telling first
    # 6 speakers span 5 directions: the 6th and later rows are zero
    wide = fit_wccn_lda(x, speakers, dims=7, reg=0.0)['matrix']
    assert wide[5:].abs().max() == 0 and wide[:5].abs().max() > 0


def test_folded_fc0_gives_the_lda_of_the_pooled_statistics():
    model = build_model('resnet18', 8, 3).eval()
    feats = [torch.randn(50 + 10 * i, 40).numpy() for i in range(12)]
    pooled, owners = embed_pooled(model, feats, 0, torch.device('cpu'))
    assert pooled.shape == (12, model.fc0.in_features)
    assert sorted(owners.tolist()) == list(range(12))
    w = fit_wccn_lda(pooled, [f's{i % 3}' for i in owners.tolist()], dims=8, reg=1.0)
    folded, _ = embed_pieces(fold_whitening(model, w), feats, 0, torch.device('cpu'))
    assert torch.allclose(folded, (pooled - w['mean']) @ w['matrix'].T, atol=1e-4)


def test_joint_whitening_puts_the_two_whitened_dvectors_side_by_side():
    model = build_model('resnet18', 8, 3).eval()
    feats = [torch.randn(50 + 10 * i, 40).numpy() for i in range(12)]
    pooled, owners = embed_pooled(model, feats, 0, torch.device('cpu'))
    speakers = [f's{i % 3}' for i in owners.tolist()]
    w = fit_layer(pooled, model.fc0, speakers, 'both')
    assert w['layer'] == 'both' and w['reg'] == 1.0 and w['embedding_reg'] == 0.2
    with torch.no_grad():
        lda = l2_norm((pooled - w['mean']) @ w['matrix'].T)                               # (12, 8)
        dvectors = model.fc0(pooled)
        wccn = l2_norm((dvectors - w['embedding_mean']) @ w['embedding_matrix'].T)        # (12, 8)
        assert torch.allclose(fit_layer(pooled, model.fc0, speakers, 'embedding')['matrix'],
                              w['embedding_matrix'])
    folded, _ = embed_pieces(fold_whitening(model, w), feats, 0, torch.device('cpu'))
    assert isinstance(model.fc0, JointWhitening) and folded.shape == (12, 16)
    assert torch.allclose(folded, torch.cat([lda, wccn], 1) / 2 ** 0.5, atol=1e-4)
    # one cosine of the joint embeddings is the mean of the two whitenings' cosines
    assert torch.allclose(folded @ folded.T, (lda @ lda.T + wccn @ wccn.T) / 2, atol=1e-4)


def test_piece_embeddings_sum_to_the_utterance_embedding():
    model = build_model('resnet18', 8, 3).eval()
    feats = [torch.randn(n, 40).numpy() for n in (250, 90, 130)]
    pieces, owners = embed_pieces(model, feats, 100, torch.device('cpu'))
    assert pieces.shape == (3 + 1 + 2, 8) and owners.tolist().count(0) == 3
    sums = torch.stack([pieces[owners == i].sum(0) for i in range(3)])
    assert torch.allclose(l2_norm(sums), embed_utterances(model, feats, 100, torch.device('cpu')),
                          atol=1e-5)


def test_whitening_script_stores_it_and_scripts_use_it(tmp_path, trained_run):
    src, train_dir, test_dir = trained_run
    log_dir = tmp_path / 'run'
    log_dir.mkdir()
    for f in glob.glob(src + '/checkpoint_*.pth'):
        shutil.copy(f, log_dir)
    plain, _ = load_model(str(log_dir), 0, torch.device('cpu'))
    emb = str(tmp_path / 'emb')
    common = ['--log_dir', str(log_dir), '--test_dir', test_dir, '--embedding_dir', emb]
    assert run_script('enroll.py', *common).returncode == 0  # before whitening
    result = run_script('tools/whitening.py', '--log_dir', str(log_dir), '--train_feat_dir',
                        train_dir)
    assert result.returncode == 0, result.stderr
    assert 'run enroll.py again' in result.stdout
    checkpoint = read_checkpoint(str(log_dir), 0)
    w = checkpoint[WHITENING_KEY]
    assert w['matrix'].shape == (128, 128) and w['reg'] == 0.2
    whitened, _ = load_model(str(log_dir), 0, torch.device('cpu'))
    x = torch.randn(2, 1, 40, 100)
    with torch.no_grad():
        expected = (plain(x)[0] - w['mean']) @ w['matrix'].T
        assert torch.allclose(whitened(x)[0], expected, atol=1e-3)
    # the AS-norm cohort: each training speaker's d-vector from the whitened model
    assert torch.allclose(checkpoint[COHORT_KEY], speaker_dvectors(whitened, train_dir, 100),
                          atol=1e-4)
    # fitting again starts from the plain model, not the whitened one
    assert run_script('tools/whitening.py', '--log_dir', str(log_dir), '--train_feat_dir',
                      train_dir).returncode == 0
    refit = read_checkpoint(str(log_dir), 0)[WHITENING_KEY]
    assert torch.allclose(refit['matrix'], w['matrix'], atol=1e-4)
    stale = run_script('identification.py', *common, '--test_speaker', 'syn_t00')
    assert stale.returncode == 1 and 'run enroll.py again' in stale.stderr
    assert run_script('enroll.py', *common).returncode == 0
    result = run_script('identification.py', *common, '--test_speaker', 'syn_t00')
    assert result.returncode == 0 and 'Predicted speaker' in result.stdout, result.stderr
    result = run_script('verification.py', *common, '--enroll_speaker', 'syn_t00',
                        '--test_speaker', 'syn_t00')
    assert result.returncode == 0 and 'this model is whitened' in result.stdout, result.stderr


def test_train_whiten_fits_into_the_best_checkpoint(tmp_path, feature_tree):
    train_dir, _ = feature_tree
    result = run_script('train.py', '--train_feat_dir', train_dir, '--n_epochs', '2',
                        '--log_dir', str(tmp_path), '--batch_size', '8', '--whiten', 'true')
    assert result.returncode == 0, result.stderr
    best = int(result.stdout.split('Lowest validation loss at epoch')[1].split()[0])
    assert 'Fitting within-speaker whitening' in result.stdout
    assert WHITENING_KEY in read_checkpoint(str(tmp_path), best)
    others = [e for e in (1, 2) if e != best]
    assert all(WHITENING_KEY not in read_checkpoint(str(tmp_path), e) for e in others)


def whiten_a_copy(trained_run, log_dir, *flags):
    """Copy the trained run's checkpoints into log_dir and run whitening.py there with flags."""
    src, train_dir, _ = trained_run
    for f in glob.glob(src + '/checkpoint_*.pth'):
        shutil.copy(f, log_dir)
    return run_script('tools/whitening.py', '--log_dir', str(log_dir), '--train_feat_dir',
                      train_dir, *flags)


def test_whitening_can_switch_a_checkpoint_to_whole_utterances(tmp_path, trained_run):
    train_dir = trained_run[1]
    result = whiten_a_copy(trained_run, tmp_path, '--whole_utterance', 'true')
    assert result.returncode == 0, result.stderr
    checkpoint = read_checkpoint(str(tmp_path), 0)
    assert checkpoint['whole_utterance'] is True
    model, _ = load_model(str(tmp_path), 0, torch.device('cpu'))
    assert model.whole_utterance
    whole = speaker_dvectors(model, train_dir, 0)
    assert torch.allclose(checkpoint[COHORT_KEY], whole, atol=1e-4)  # fitted on whole ones
    model.whole_utterance = False
    assert not torch.allclose(speaker_dvectors(model, train_dir, 100), whole, atol=1e-3)


def test_whitening_on_the_pooling_layer_replaces_fc0(tmp_path, trained_run):
    train_dir = trained_run[1]
    bad = whiten_a_copy(trained_run, tmp_path, '--layer', 'pool')
    assert bad.returncode == 1
    assert bad.stderr.strip() == 'error: --layer pool: expected one of embedding, pooling, both'
    result = whiten_a_copy(trained_run, tmp_path, '--layer', 'pooling')
    assert result.returncode == 0, result.stderr
    checkpoint = read_checkpoint(str(tmp_path), 0)
    w = checkpoint[WHITENING_KEY]
    model, _ = load_model(str(tmp_path), 0, torch.device('cpu'))
    assert w['layer'] == 'pooling' and w['reg'] == 1.0
    assert w['matrix'].shape == (128, model.fc0.in_features)
    assert torch.allclose(checkpoint[COHORT_KEY], speaker_dvectors(model, train_dir, 100),
                          atol=1e-4)
    # the scripts on a model whose fc0 was replaced: the 'both' test below


def test_whitening_on_both_layers_doubles_the_dvector(tmp_path, trained_run):
    _, train_dir, test_dir = trained_run
    result = whiten_a_copy(trained_run, tmp_path, '--layer', 'both', '--reg', '0.3')
    assert result.returncode == 0, result.stderr
    checkpoint = read_checkpoint(str(tmp_path), 0)
    w = checkpoint[WHITENING_KEY]
    model, _ = load_model(str(tmp_path), 0, torch.device('cpu'))
    assert w['layer'] == 'both' and w['reg'] == 1.0 and w['embedding_reg'] == 0.3
    assert w['embedding_matrix'].shape == (128, 128)
    cohort = checkpoint[COHORT_KEY]
    assert cohort.shape == (len(read_feats_structure(train_dir)['speaker_id'].unique()), 256)
    # the pieces' joint embeddings are summed per speaker, as enrollment does
    assert torch.allclose(cohort, speaker_dvectors(model, train_dir, 100), atol=1e-4)
    emb = str(tmp_path / 'emb')
    common = ['--log_dir', str(tmp_path), '--test_dir', test_dir, '--embedding_dir', emb]
    assert run_script('enroll.py', *common).returncode == 0
    result = run_script('identification.py', *common, '--test_speaker', 'syn_t00')
    assert result.returncode == 0 and 'Predicted speaker' in result.stdout, result.stderr
    result = run_script('verification.py', *common, '--enroll_speaker', 'syn_t00',
                        '--test_speaker', 'syn_t00', '--as_norm', '3', '--thres', '1.5')
    assert result.returncode == 0 and 'Score :' in result.stdout, result.stderr
