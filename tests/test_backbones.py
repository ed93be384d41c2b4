"""Backbones (ResNet, VGG, LSTM, ECAPA), poolings, SpecAugment: shapes, gradients, checkpoints."""
import os
import re

import pytest
import torch

from configure import SetupError
from dvector.augment import spec_augment
from model import build_model
from model.pooling import POOLINGS, build_pooling

LENGTHS = (37, 100, 233)


@pytest.mark.parametrize('backbone', ['resnet18', 'vgg', 'lstm', 'ecapa'])
@pytest.mark.parametrize('pooling', sorted(POOLINGS))
def test_forward_backward_shapes_at_several_lengths(backbone, pooling):
    torch.manual_seed(0)
    model = build_model(backbone, embedding_size=32, n_classes=7, pooling=pooling)
    for frames in LENGTHS:
        x = torch.randn(2, 1, 40, frames, requires_grad=True)
        emb, logits = model.train()(x)
        assert emb.shape == (2, 32) and logits.shape == (2, 7)
        logits.sum().backward()
        assert torch.isfinite(x.grad).all()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        model.zero_grad()
    emb, _ = model.eval()(torch.randn(1, 1, 40, 50))  # a batch of one in eval mode
    assert emb.shape == (1, 32)


@pytest.mark.parametrize('pooling', sorted(POOLINGS))
def test_pooling_output_size(pooling):
    pool = build_pooling(pooling, 8, 3)
    for frames in (1, 5, 40):
        out = pool(torch.randn(4, 8, 3, frames))
        assert out.shape == (4, pool.out_dim)


def test_stats_pooling_is_mean_and_std_over_frames():
    x = torch.randn(2, 3, 2, 50)
    out = build_pooling('stats', 3, 2)(x)
    flat = x.reshape(2, 6, 50)
    assert torch.allclose(out[:, :6], flat.mean(-1), atol=1e-5)
    assert torch.allclose(out[:, 6:], flat.std(-1, unbiased=False), atol=1e-3)


def test_attentive_stats_with_uniform_attention_is_stats():
    pool = build_pooling('attentive_stats', 3, 2)
    for p in pool.attention[-1].parameters():
        torch.nn.init.zeros_(p)  # equal scores -> equal weights
    x = torch.randn(2, 3, 2, 50)
    assert torch.allclose(pool(x), build_pooling('stats', 3, 2)(x), atol=1e-5)


def test_avg_pooling_keeps_the_tutorial_parameters():
    names = set(build_model('resnet18', 128, 240).state_dict())
    assert {'fc0.weight', 'bn0.running_mean', 'last.weight'} <= names
    assert not any(n.startswith('pool.') for n in names)
    assert build_model('resnet18', 128, 240).fc0.in_features == 128
    assert build_model('resnet18', 128, 240, pooling='stats').fc0.in_features == 2 * 128 * 5
    assert build_model('vgg', 128, 240).fc0.in_features == 256
    assert build_model('lstm', 128, 240, pooling='last').fc0.in_features == 256
    assert build_model('ecapa', 128, 240, pooling='stats').fc0.in_features == 2 * 3 * 256


def test_ecapa_keeps_every_frame_and_aggregates_its_three_blocks():
    model = build_model('ecapa', 32, 7, pooling='stats').eval()
    for frames in LENGTHS:
        assert model.pretrained(torch.randn(2, 1, 40, frames)).shape == (2, 768, 1, frames)
    blocks = model.pretrained.blocks
    assert [b.res2[0][0].dilation[0] for b in blocks] == [2, 3, 4]
    # the aggregation reads the concatenated outputs of all three blocks, not only the last
    assert model.pretrained.aggregate[0].in_channels == 3 * blocks[-1].conv3[0].out_channels


def test_old_model_args_without_pooling_rebuild_the_same_model():
    old = build_model(backbone='resnet18', embedding_size=16, n_classes=3)
    new = build_model(backbone='resnet18', embedding_size=16, n_classes=3, pooling='avg')
    new.load_state_dict(old.state_dict())
    x = torch.randn(2, 1, 40, 60)
    assert torch.allclose(old.eval()(x)[0], new.eval()(x)[0])


def test_unknown_names_list_the_known_ones():
    with pytest.raises(SetupError, match='unknown backbone .*resnet18.*vgg.*lstm'):
        build_model('transformer', 16, 3)
    with pytest.raises(SetupError, match="unknown pooling 'max'.*attentive_stats"):
        build_model('resnet18', 16, 3, pooling='max')


def test_spec_augment_masks_bands_and_frames_within_the_widths():
    g = torch.Generator().manual_seed(0)
    x = torch.ones(64, 1, 40, 100)
    out = spec_augment(x, freq_mask=8, time_mask=20, generator=g)
    assert out.shape == x.shape and torch.equal(x, torch.ones_like(x))  # input untouched
    for crop in out[:, 0]:
        zero_bands = (crop == 0).all(dim=1).sum().item()
        zero_frames = (crop == 0).all(dim=0).sum().item()
        assert zero_bands <= 8 and zero_frames <= 20
    assert (out == 0).any()
    assert torch.equal(spec_augment(x, 0, 0), x)


# ---- end to end: train.py one epoch per kind, then enroll.py and identification.py -----------

KINDS = {  # one short training run per kind covers every backbone family, pooling and loss family
    'lstm_last_center': ['--backbone', 'lstm', '--pooling', 'last', '--loss_type', 'center',
                         '--optimizer_type', 'adam', '--lr', '0.001'],
    'vgg_stats_aamsoftmax': ['--backbone', 'vgg', '--pooling', 'stats', '--loss_type',
                             'aamsoftmax', '--spec_augment', 'true', '--lr_schedule', 'cosine'],
    'ecapa_stats_amsoftmax': ['--backbone', 'ecapa', '--pooling', 'stats', '--loss_type',
                              'amsoftmax', '--speed_perturb', 'true'],
    'resnet_attentive_asoftmax': ['--pooling', 'attentive_stats', '--loss_type', 'asoftmax',
                                  '--win_size', '60', '--stem_stride', '2',
                                  '--speed_perturb', 'true'],
    'resnet_avg_softmaxproto': ['--loss_type', 'softmaxproto', '--win_size', '60',
                                '--stem_stride', '2', '--speed_perturb', 'true'],
}
LOSS_STATE = {'center': 'centers', 'softmaxproto': 'w'}  # else a margin loss's classifier


@pytest.mark.parametrize('kind', sorted(KINDS))
def test_each_kind_trains_and_round_trips_through_enroll_and_identification(tmp_path, kind,
                                                                            feature_tree):
    from conftest import run_script
    from dvector.fileio import load_torch
    train_dir, test_dir = feature_tree
    log_dir, emb = str(tmp_path / 'log'), str(tmp_path / 'emb')
    result = run_script('train.py', '--train_feat_dir', train_dir, '--n_epochs', '1',
                        '--log_dir', log_dir, '--batch_size', '6', '--val_ratio', '25',
                        '--embedding_size', '32', *KINDS[kind])
    assert result.returncode == 0, result.stderr
    checkpoint = load_torch(f'{log_dir}/checkpoint_1.pth')
    flags = dict(zip(KINDS[kind][::2], KINDS[kind][1::2]))
    assert checkpoint['model_args']['backbone'] == flags.get('--backbone', 'resnet18')
    assert checkpoint['model_args']['pooling'] == flags.get('--pooling', 'avg')
    assert checkpoint['loss_args']['loss_type'] == flags['--loss_type']
    assert checkpoint['model_args'].get('stem_stride', 1) == int(flags.get('--stem_stride', 1))
    copies = 3 if flags.get('--speed_perturb') == 'true' else 1  # speeds 0.9 and 1.1: new classes
    assert checkpoint['model_args']['n_classes'] == copies * len(checkpoint['speakers'])
    assert checkpoint['speed_factors'] == ([0.9, 1.1] if copies == 3 else [])
    assert LOSS_STATE.get(flags['--loss_type'], 'classifier.weight') \
        in checkpoint['loss_state_dict']
    # the scripts have no model settings: the checkpoint alone rebuilds the model
    common = ['--log_dir', log_dir, '--test_dir', test_dir, '--embedding_dir', emb]
    result = run_script('enroll.py', *common)
    assert result.returncode == 0, result.stderr
    assert load_torch(f'{emb}/syn_t00.pth').shape == (1, 32)
    result = run_script('identification.py', *common, '--test_speaker', 'syn_t01')
    assert result.returncode == 0, result.stderr
    # an enrolled speaker, or none when even the best score is below the threshold train.py
    # stored (a model of one epoch)
    assert re.search(r'True speaker : syn_t01\nPredicted speaker : (syn_t0\d|none)',
                     result.stdout)


def test_the_best_recipe_file_trains_whitens_and_records_its_choices(tmp_path, feature_tree):
    """recipes/best_slice.py, README's best recipe, on the tiny tree (short settings)."""
    from conftest import ROOT, run_script
    from dvector.checkpoint import COHORT_KEY, WHITENING_KEY, read_checkpoint
    from dvector.cli import read_recipe
    train_dir, test_dir = feature_tree
    recipe = read_recipe(os.path.join(ROOT, 'recipes', 'best_slice.py'),
                         {k: None for k in ('train_feat_dir', 'log_dir', 'backbone', 'pooling',
                                            'speed_perturb', 'speed_factors', 'lr_schedule',
                                            'n_epochs', 'batch_size', 'val_ratio', 'lr',
                                            'whiten', 'whiten_layer', 'whole_utterance')})
    result = run_script('train.py', 'recipes/best_slice.py', '--n_epochs', '1',
                        '--train_feat_dir', train_dir, '--log_dir', str(tmp_path),
                        '--batch_size', '6', '--val_ratio', '25', '--embedding_size', '32')
    assert result.returncode == 0, result.stderr
    checkpoint = read_checkpoint(str(tmp_path), 1)
    assert checkpoint['model_args']['backbone'] == recipe['backbone'] == 'ecapa'
    assert checkpoint['model_args']['pooling'] == recipe['pooling']
    assert checkpoint['speed_factors'] == [0.9, 1.1] and WHITENING_KEY in checkpoint
    assert checkpoint['whole_utterance'] is True and COHORT_KEY in checkpoint
    assert checkpoint[WHITENING_KEY]['layer'] == recipe['whiten_layer'] == 'both'
    assert checkpoint['train_settings']['lr'] == recipe['lr']       # from the file
    assert checkpoint['train_settings']['batch_size'] == 6           # the command line wins
    result = run_script('enroll.py', '--log_dir', str(tmp_path), '--test_dir', test_dir,
                        '--embedding_dir', str(tmp_path / 'emb'))
    assert result.returncode == 0, result.stderr
    assert 'this model embeds each utterance whole' in result.stdout


def test_the_checkpoint_wins_over_differing_settings(tmp_path, capsys):
    from dvector.checkpoint import load_model, save_checkpoint
    args = {'backbone': 'lstm', 'embedding_size': 16, 'n_classes': 3, 'pooling': 'last'}
    save_checkpoint(str(tmp_path), 1, {'state_dict': build_model(**args).state_dict(),
                                       'model_args': args, 'valid_loss': 1.0})
    model, _ = load_model(str(tmp_path), 0, torch.device('cpu'),
                          settings={'backbone': 'resnet18', 'pooling': 'last', 'cp_num': 0})
    out = capsys.readouterr().out
    assert "note: the checkpoint was trained with backbone='lstm'; the setting " \
           "backbone='resnet18' is not used" in out and 'pooling' not in out
    assert model.backbone == 'lstm' and model(torch.randn(1, 1, 40, 30))[0].shape == (1, 16)


def test_bad_choices_fail_before_training(monkeypatch):
    """train.py's settings checks, in-process (the command line is tested in test_scripts)."""
    import train
    from dvector import cli
    defaults = cli.script_settings(vars(train))  # before any case changes the module
    for flags, parts in [(['--loss_type', 'arcface'], ['arcface', 'aamsoftmax']),
                         (['--backbone', 'gru'], ['gru', 'lstm', 'vgg']),
                         (['--pooling', 'max'], ['max', 'attentive_stats']),
                         (['--loss_type', 'aamsoftmax', '--margin', '2'], ['margin=2']),
                         (['--lr_schedule', 'step'], ['lr_schedule', 'cosine']),
                         (['--backbone', 'vgg', '--stem_stride', '2'], ['stem_stride=2', 'vgg']),
                         (['--speed_perturb', 'true', '--speed_factors', '0.9,fast'],
                          ['speed_factors', '0.9,fast']),
                         (['--speed_perturb', 'true', '--speed_factors', '1.0'],
                          ['speed_factors', 'other than 1.0'])]:
        namespace = {**defaults, 'SETTING_RULES': train.SETTING_RULES}
        with pytest.raises(SetupError) as err:
            settings = cli.override_settings(namespace, flags)
            for name, value in settings.items():
                monkeypatch.setattr(train, name, value)
            train.check_choices()
        assert all(p in str(err.value) for p in parts), str(err.value)
