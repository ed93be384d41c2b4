"""torchrun: two CPU processes (gloo) train one small epoch; rank 0 alone writes and prints."""
import os
import shutil
import subprocess
import sys

import pytest
import torch

from conftest import ROOT
from dvector.fileio import load_torch

TORCHRUN = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2']


def torchrun(*args):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    return subprocess.run([*TORCHRUN, 'train.py', *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=env)


@pytest.mark.skipif(not torch.distributed.is_available(), reason='torch.distributed missing')
def test_two_process_training_gives_one_loadable_checkpoint(tmp_path, feature_tree):
    train_dir, _ = feature_tree
    log = str(tmp_path / 'log')
    result = torchrun('--train_feat_dir', train_dir, '--n_epochs', '1', '--log_dir', log,
                      '--batch_size', '4', '--val_ratio', '25', '--use_cuda', 'false')
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count('Number of classes (speakers):') == 1  # rank 0 prints
    assert result.stdout.count('  * Validation:') == 1
    assert sorted(os.listdir(log)) == ['checkpoint_1.pth', 'loss_plot.png']
    checkpoint = load_torch(os.path.join(log, 'checkpoint_1.pth'))
    assert not any(k.startswith('module.') for k in checkpoint['state_dict'])  # plain model


def test_more_ranks_than_validation_files_is_refused(tmp_path, feature_tree):
    train_dir, _ = feature_tree
    small = tmp_path / 'small'
    for spk in sorted(os.listdir(train_dir))[:2]:
        os.makedirs(small / spk)
        for name in sorted(os.listdir(os.path.join(train_dir, spk)))[:3]:
            shutil.copy(os.path.join(train_dir, spk, name), small / spk / name)
    result = torchrun('--train_feat_dir', str(small), '--n_epochs', '1', '--log_dir',
                      str(tmp_path / 'log'), '--val_ratio', '20', '--use_cuda', 'false')
    assert result.returncode != 0
    assert 'torchrun: 2 processes but only 1 validation files' in result.stderr
    assert result.stderr.count('error:') == 1
