"""End to end: the four scripts run as a user runs them, on a small synthetic DB."""
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from conftest import ROOT, assert_one_line_error, run_script
from dvector.fileio import load_torch, save_pickle


def common(log_dir, test_dir, emb_dir):
    return ['--log_dir', log_dir, '--test_dir', test_dir, '--embedding_dir', emb_dir]


@pytest.mark.cuda  # use_cuda is left at True: a GPU when there is one
def test_training_writes_checkpoints_plot_and_console(trained_run):
    log_dir, _, _ = trained_run
    files = sorted(os.listdir(log_dir))
    assert files == ['checkpoint_1.pth', 'checkpoint_2.pth', 'loss_plot.png']
    checkpoint = load_torch(os.path.join(log_dir, 'checkpoint_2.pth'))
    assert checkpoint['epoch'] == 3 and checkpoint['model_args']['n_classes'] == 4
    assert checkpoint['speakers'] == [f'syn_s0{i}' for i in range(4)]
    assert checkpoint['feature_settings']['filter_bank'] == 40
    assert {'optimizer', 'scheduler', 'valid_loss', 'history'} <= set(checkpoint)
    assert os.path.getsize(os.path.join(log_dir, 'loss_plot.png')) > 10000


def test_train_console_matches_the_tutorial(tmp_path, feature_tree):
    train_dir, _ = feature_tree
    result = run_script('train.py', '--train_feat_dir', train_dir, '--n_epochs', '1',
                        '--log_dir', str(tmp_path), '--batch_size', '8', '--val_ratio', '25')
    out = result.stdout
    assert result.returncode == 0, result.stderr
    assert 'Training set 18 utts (75.0%)' in out and 'Validation set 6 utts (25.0%)' in out
    assert 'Total 24 utts' in out and 'Number of classes (speakers):\n4\n' in out
    assert re.search(r'Train Epoch:   1 \[       0/      18 \(  0%\)\]\tTime \d+\.\d{3} '
                     r'\(\d+\.\d{3}\)\tLoss \d+\.\d{4}\tAcc \d+\.\d{4}', out)
    assert re.search(r'  \* Validation: Loss \d+\.\d{4}\tAcc \d+\.\d{4}', out)
    assert 'Lowest validation loss at epoch 1' in out


def test_training_on_two_folders(tmp_path, feature_tree):
    """train_feat_dir 'a,b': a corpus and recordings of one's own, one set of speakers."""
    train_dir, _ = feature_tree
    speakers = sorted(os.listdir(train_dir))
    for folder, chosen in (('corpus', speakers[:3]), ('own', speakers[3:])):
        os.makedirs(tmp_path / folder)
        for speaker in chosen:
            os.symlink(os.path.join(train_dir, speaker), tmp_path / folder / speaker)
    folders = f'{tmp_path}/corpus,{tmp_path}/own'
    result = run_script('train.py', '--train_feat_dir', folders, '--n_epochs', '1', '--log_dir',
                        str(tmp_path / 'log'), '--batch_size', '8', '--val_ratio', '25')
    assert result.returncode == 0, result.stderr
    assert 'Total 24 utts' in result.stdout
    assert 'Number of classes (speakers):\n4\n' in result.stdout
    assert load_torch(str(tmp_path / 'log' / 'checkpoint_1.pth'))['speakers'] == speakers
    os.symlink(os.path.join(train_dir, speakers[0]), tmp_path / 'own' / speakers[0])
    assert_one_line_error(run_script('train.py', '--train_feat_dir', folders, '--log_dir',
                                     str(tmp_path / 'log2')),
                          f'speaker {speakers[0]} is in both {tmp_path}/corpus and')
    assert not os.path.exists(tmp_path / 'log2')


@pytest.mark.cuda  # use_cuda is left at True: a GPU when there is one
def test_enroll_identify_verify(tmp_path, trained_run):
    log_dir, _, test_dir = trained_run
    emb = str(tmp_path / 'emb')
    result = run_script('enroll.py', *common(log_dir, test_dir, emb))
    assert result.returncode == 0, result.stderr
    assert '=> loading checkpoint' in result.stdout
    assert 'Aggregates the activation (spk : syn_t01)' in result.stdout
    assert 'Save the embeddings for syn_t02' in result.stdout
    assert sorted(os.listdir(emb)) == ['enrolled_with.txt', 'speech_seconds.txt', 'syn_t00.pth',
                                       'syn_t01.pth', 'syn_t02.pth']
    assert load_torch(os.path.join(emb, 'syn_t00.pth')).shape == (1, 128)
    result = run_script('identification.py', *common(log_dir, test_dir, emb),
                        '--test_speaker', 'syn_t01')
    assert result.returncode == 0, result.stderr
    assert '=== Speaker identification ===\nTrue speaker : syn_t01\nPredicted speaker : syn_t' \
        in result.stdout
    result = run_script('verification.py', *common(log_dir, test_dir, emb),
                        '--enroll_speaker', 'syn_t00', '--test_speaker', 'syn_t01',
                        '--thres', '1')
    assert result.returncode == 0, result.stderr
    assert 'Claimed speaker : syn_t00\nTrue speaker : syn_t01\n\nResult : Reject' in result.stdout
    assert re.search(r"Score : -?\d\.\d{4}\nThreshold : 1 \(--thres\): the user's threshold, on "
                     r'the score\n', result.stdout)


def test_bad_training_input(tmp_path):
    assert_one_line_error(run_script('train.py', '--train_feat_dir', str(tmp_path / 'none')),
                          'none', 'not found')
    os.makedirs(tmp_path / 'empty')
    assert_one_line_error(run_script('train.py', '--train_feat_dir', str(tmp_path / 'empty')),
                          'no feature files')
    assert_one_line_error(run_script('train.py', '--n_epochs', 'two'), '--n_epochs', 'int')
    assert_one_line_error(run_script('train.py', '--epochs', '2'), 'unknown setting',
                          'n_epochs')
    assert_one_line_error(run_script('train.py', '--whiten_layer', 'pool'),
                          '--whiten_layer pool: expected one of embedding, pooling, both')
    inside = str(tmp_path / 'empty' / 'run')  # checkpoints among the speakers' features
    assert_one_line_error(run_script('train.py', '--train_feat_dir', str(tmp_path / 'empty'),
                                     '--log_dir', inside), f'--log_dir {inside}: is inside')
    assert os.listdir(tmp_path / 'empty') == []
    (tmp_path / 'db' / 'spk').mkdir(parents=True)  # split_heldout's layout: linked speakers
    (tmp_path / 'split').mkdir()
    os.symlink(tmp_path / 'db' / 'spk', tmp_path / 'split' / 'spk')
    for inside in (str(tmp_path / 'split' / 'spk' / 'run'), str(tmp_path / 'db' / 'run')):
        assert_one_line_error(run_script('train.py', '--train_feat_dir', str(tmp_path / 'split'),
                                         '--log_dir', inside), f'--log_dir {inside}: is inside')


def test_corrupt_and_nan_feature_files_are_named(tmp_path, feature_tree):
    train_dir, _ = feature_tree
    for name, obj in [('corrupt', None), ('nan', {'feat': np.full((300, 40), np.nan),
                                                  'label': 'x'}), ('list', [1, 2])]:
        bad = tmp_path / name
        subprocess.run(['cp', '-r', train_dir, str(bad)], check=True)
        path = bad / 'syn_s00' / 'syn_s00_u00.p'
        if obj is None:
            path.write_bytes(b'not a pickle at all')
        else:
            save_pickle(obj, str(path))
        result = run_script('train.py', '--train_feat_dir', str(bad), '--log_dir',
                            str(tmp_path / 'log'), '--n_epochs', '1')
        assert_one_line_error(result, str(path))
    assert not os.path.exists(tmp_path / 'log')


def test_short_utterances_are_tiled_with_a_warning(tmp_path):
    for s in range(2):
        for u in range(5):
            feat = np.random.default_rng(u).normal(s, 1, (60 + u, 40))
            save_pickle({'feat': feat, 'label': f's{s}'}, str(tmp_path / 'f' / f's{s}' / f'{u}.p'))
    result = run_script('train.py', '--train_feat_dir', str(tmp_path / 'f'), '--n_epochs', '1',
                        '--log_dir', str(tmp_path / 'log'), '--val_ratio', '20')
    assert result.returncode == 0, result.stderr
    assert 'warning: 8 training utterances are shorter than 100 frames' in result.stdout


def test_scoring_scripts_bad_input(tmp_path, trained_run):
    log_dir, _, test_dir = trained_run
    emb = str(tmp_path / 'emb')
    assert_one_line_error(run_script('enroll.py', *common(str(tmp_path), test_dir, emb)),
                          'no checkpoint_<epoch>.pth')
    assert_one_line_error(run_script('enroll.py', *common(log_dir, test_dir, emb),
                                     '--cp_num', '9'), 'cp_num=9', 'available epochs: 1, 2')
    os.makedirs(emb)
    assert_one_line_error(run_script('identification.py', *common(log_dir, test_dir, emb),
                                     '--test_speaker', 'syn_t00'), 'no enrolled speakers')
    assert run_script('enroll.py', *common(log_dir, test_dir, emb)).returncode == 0
    assert_one_line_error(run_script('verification.py', *common(log_dir, test_dir, emb),
                                     '--enroll_speaker', 'ghost', '--test_speaker', 'syn_t00',
                                     '--thres', '0.5'),
                          'ghost is not enrolled', 'syn_t00, syn_t01, syn_t02')
    assert_one_line_error(run_script('identification.py', *common(log_dir, test_dir, emb),
                                     '--test_speaker', 'ghost'), "'ghost'", 'syn_t01')


@pytest.mark.cuda  # use_cuda is left at True: a GPU when there is one
def test_kill_mid_training_keeps_checkpoints_and_resume_continues(tmp_path, feature_tree):
    train_dir, _ = feature_tree
    log = str(tmp_path / 'log')
    args = ['train.py', '--train_feat_dir', train_dir, '--log_dir', log, '--batch_size', '8',
            '--val_ratio', '25']
    proc = subprocess.Popen([sys.executable, *args, '--n_epochs', '200'], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not os.path.exists(os.path.join(log, 'checkpoint_2.pth')) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = sorted(int(f[11:-4]) for f in os.listdir(log) if f.startswith('checkpoint_'))
    assert saved and all(load_torch(f'{log}/checkpoint_{e}.pth')['epoch'] == e + 1 for e in saved)
    last = max(saved)
    result = run_script(*args, '--n_epochs', str(last + 1), '--resume', 'true')
    assert result.returncode == 0, result.stderr
    assert f'=> resuming from {log}/checkpoint_{last}.pth at epoch {last + 1}' in result.stdout
    assert f'Train Epoch: {last + 1:3d}' in result.stdout
    assert 'Train Epoch:   1 ' not in result.stdout
    history = load_torch(f'{log}/checkpoint_{last + 1}.pth')['history']
    assert history['epoch'] == list(range(1, last + 2))
    other = run_script(*args, '--n_epochs', '9', '--resume', 'true', '--embedding_size', '64')
    assert_one_line_error(other, 'resume', 'embedding_size')
    assert torch.is_tensor(load_torch(f'{log}/checkpoint_1.pth')['state_dict']['fc0.weight'])


def test_features_of_another_band_count_are_refused(tmp_path, trained_run):
    """20-band features given to a 40-band model: one line from enroll and identification."""
    log_dir, _, _ = trained_run
    narrow = tmp_path / 'narrow'
    for spk in ('s1', 's2'):
        for name in ('enroll', 'test'):
            save_pickle({'feat': np.random.rand(250, 20), 'label': spk},
                        str(narrow / spk / f'{name}.p'))
    emb = str(tmp_path / 'emb')
    assert_one_line_error(run_script('enroll.py', *common(log_dir, str(narrow), emb)),
                          'enroll.p: 20 feature bands', 'trained on 40')
    assert not os.path.exists(emb)
    real_emb = str(tmp_path / 'real_emb')
    assert run_script('enroll.py', *common(log_dir, trained_run[2], real_emb)).returncode == 0
    assert_one_line_error(run_script('identification.py', *common(log_dir, str(narrow), real_emb),
                                     '--test_speaker', 's1'),
                          f'{narrow}/s1/test.p', 'trained on 40')


def test_a_new_run_sets_the_previous_run_aside(tmp_path, trained_run):
    """No run overwrites another: what was in log_dir moves to previous_run_<n>/."""
    log_dir, train_dir, _ = trained_run
    log = tmp_path / 'log'
    subprocess.run(['cp', '-r', log_dir, str(log)], check=True)
    (log / '.checkpoint_3.pth.abc.tmp').write_bytes(b'left by a killed run')
    result = run_script('train.py', '--train_feat_dir', train_dir, '--n_epochs', '1',
                        '--log_dir', str(log), '--batch_size', '8', '--val_ratio', '25')
    assert result.returncode == 0, result.stderr
    assert f'moved to {log}/previous_run_1/' in result.stdout
    assert sorted(os.listdir(log / 'previous_run_1')) == ['checkpoint_1.pth', 'checkpoint_2.pth',
                                                          'loss_plot.png']
    assert sorted(os.listdir(log)) == ['checkpoint_1.pth', 'loss_plot.png', 'previous_run_1']
    assert load_torch(str(log / 'checkpoint_1.pth'))['history']['epoch'] == [1]


def test_console_names_device_folder_checkpoint_file_and_plot(tmp_path, trained_run):
    log_dir, _, test_dir = trained_run
    result = run_script('enroll.py', *common(log_dir, test_dir, str(tmp_path / 'emb')))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f'=> loading checkpoint\n{log_dir}/checkpoint_')
    assert ': lowest validation loss (cp_num = 0)\n' in result.stdout
    result = run_script('identification.py', *common(log_dir, test_dir, str(tmp_path / 'emb')),
                        '--cp_num', '1', '--test_speaker', 'syn_t00')
    assert f'{log_dir}/checkpoint_1.pth: cp_num = 1\n' in result.stdout


def test_a_recipe_file_sets_the_training_and_the_checkpoint_records_it(tmp_path, feature_tree):
    train_dir, _ = feature_tree
    recipe = tmp_path / 'small.py'
    recipe.write_text('# a small recipe\nbatch_size = 8  # crops\nval_ratio = 25\n'
                      'embedding_size = 32\nn_epochs = 3\n')
    log = str(tmp_path / 'log')
    result = run_script('train.py', str(recipe), '--train_feat_dir', train_dir, '--log_dir', log,
                        '--n_epochs', '1')
    assert result.returncode == 0, result.stderr
    assert f'Training on cpu (1 process(es)); checkpoints and the loss plot go to {log}/' \
        in result.stdout
    assert sorted(os.listdir(log)) == ['checkpoint_1.pth', 'loss_plot.png']  # --n_epochs won
    checkpoint = load_torch(f'{log}/checkpoint_1.pth')
    assert checkpoint['train_settings']['batch_size'] == 8
    assert checkpoint['train_settings']['n_epochs'] == 1
    assert checkpoint['model_args']['embedding_size'] == 32
    assert checkpoint['model_args']['n_bands'] == 40
    recipe.write_text('batch_sise = 8\n')
    assert_one_line_error(run_script('train.py', str(recipe)), str(recipe),
                          'unknown setting batch_sise')


def test_the_model_is_built_for_the_band_count_of_the_training_features(tmp_path):
    """20-band features train a 20-band model; enroll then takes 20 bands and refuses 40."""
    rng = np.random.default_rng(0)
    for split, names in (('train', [f'u{u}' for u in range(5)]), ('test', ['enroll', 'test'])):
        for s in range(2):
            for name in names:
                feat = rng.normal(s, 1, (250, 20))
                save_pickle({'feat': feat, 'label': f's{s}'}, str(tmp_path / split / f's{s}' /
                                                                   f'{name}.p'))
    log = str(tmp_path / 'log')
    result = run_script('train.py', '--train_feat_dir', str(tmp_path / 'train'), '--n_epochs',
                        '1', '--log_dir', log, '--val_ratio', '20', '--batch_size', '4')
    assert result.returncode == 0, result.stderr
    assert load_torch(f'{log}/checkpoint_1.pth')['model_args']['n_bands'] == 20
    emb = str(tmp_path / 'emb')
    assert run_script('enroll.py', *common(log, str(tmp_path / 'test'), emb)).returncode == 0
    save_pickle({'feat': rng.normal(0, 1, (250, 40)), 'label': 's0'},
                str(tmp_path / 'test' / 's0' / 'test.p'))
    assert_one_line_error(run_script('identification.py', *common(log, str(tmp_path / 'test'),
                                                                  emb), '--test_speaker', 's0'),
                          'test.p', 'trained on 20')
    save_pickle({'feat': rng.normal(0, 1, (250, 41)), 'label': 's1'},
                str(tmp_path / 'train' / 's1' / 'u3.p'))
    assert_one_line_error(run_script('train.py', '--train_feat_dir', str(tmp_path / 'train'),
                                     '--log_dir', str(tmp_path / 'log2')),
                          f'{tmp_path}/train/s1/u3.p: 41 feature bands', 'have 20')


def test_one_speaker_is_refused(tmp_path):
    for u in range(4):
        save_pickle({'feat': np.zeros((200, 40)), 'label': 'only'},
                    str(tmp_path / 'f' / 'only' / f'{u}.p'))
    assert_one_line_error(run_script('train.py', '--train_feat_dir', str(tmp_path / 'f'),
                                     '--log_dir', str(tmp_path / 'log'), '--val_ratio', '25'),
                          '1 speaker', 'two or more')


def test_a_learning_rate_drop_is_printed(capsys, monkeypatch):
    import train
    model = torch.nn.Linear(2, 2)
    monkeypatch.setattr(train, 'lr_schedule', 'plateau')
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = train.create_scheduler(optimizer)
    for _ in range(4):  # patience 2: the fourth epoch without progress lowers it
        train.step_scheduler(scheduler, optimizer, 1.0)
    assert 'Learning rate reduced from 0.1 to 0.01 (validation loss stalled)' \
        in capsys.readouterr().out


def test_fine_tuning_starts_from_a_checkpoint_of_the_same_model(tmp_path, trained_run):
    """init_from: a run starts from a trained model's weights (at a learning rate too small to
    move them, they stay), with a loss of its own; the setting is recorded."""
    log_dir, train_dir, _ = trained_run
    source = os.path.join(log_dir, 'checkpoint_2.pth')
    result = run_script('train.py', '--train_feat_dir', train_dir, '--n_epochs', '1',
                        '--log_dir', str(tmp_path / 'ft'), '--batch_size', '8', '--val_ratio',
                        '25', '--init_from', source, '--loss_type', 'aamsoftmax', '--lr', '1e-9')
    assert result.returncode == 0, result.stderr
    assert f'=> starting from {source}' in result.stdout
    tuned, start = (load_torch(p) for p in (str(tmp_path / 'ft' / 'checkpoint_1.pth'), source))
    weights = [k for k in start['state_dict'] if 'running' not in k and 'num_batches' not in k]
    assert all(torch.allclose(tuned['state_dict'][k], start['state_dict'][k], atol=1e-6)
               for k in weights)
    assert tuned['train_settings']['init_from'] == source
    resume = ['train.py', '--train_feat_dir', train_dir, '--n_epochs', '2', '--log_dir',
              str(tmp_path / 'ft'), '--batch_size', '8', '--val_ratio', '25', '--loss_type',
              'aamsoftmax', '--lr', '1e-9', '--resume', 'true']
    other = os.path.join(log_dir, 'checkpoint_1.pth')
    assert_one_line_error(run_script(*resume, '--init_from', other),
                          'continues a run that started from', f'not init_from {other}')
    resumed = run_script(*resume, '--init_from', source)  # the recipe as it is: resumes
    assert resumed.returncode == 0, resumed.stderr
    assert 'not loaded again, the resumed run started from it' in resumed.stdout
    assert os.path.exists(tmp_path / 'ft' / 'checkpoint_2.pth')
    # resumed once without init_from, the run still knows where it started: the recipe with
    # its init_from resumes again (it was refused as "started from random weights")
    resume[4] = '3'
    assert run_script(*resume).returncode == 0
    resume[4] = '4'
    again = run_script(*resume, '--init_from', source)
    assert again.returncode == 0, again.stderr
    assert load_torch(str(tmp_path / 'ft' / 'checkpoint_4.pth'))['started_from'] == \
        os.path.realpath(source)


def test_fine_tuning_from_another_model_or_file_is_refused(tmp_path, trained_run):
    log_dir, train_dir, _ = trained_run
    source = os.path.join(log_dir, 'checkpoint_2.pth')
    args = ['train.py', '--train_feat_dir', train_dir, '--log_dir', str(tmp_path / 'ft'),
            '--val_ratio', '25']
    assert_one_line_error(run_script(*args, '--init_from', source, '--embedding_size', '64'),
                          f'init_from: {source} is a model', "'embedding_size': 64")
    assert_one_line_error(run_script(*args, '--init_from', str(tmp_path / 'none.pth')),
                          'init_from', 'no such file')
    (tmp_path / 'text.pth').write_text('not a checkpoint')
    assert_one_line_error(run_script(*args, '--init_from', str(tmp_path / 'text.pth')),
                          'init_from: ', 'text.pth', 'not a file that torch.save wrote')
    (tmp_path / 'plot.png').write_bytes(b'\x89PNG\r\n\x1a\n' + bytes(range(256)))
    assert_one_line_error(run_script(*args, '--init_from', str(tmp_path / 'plot.png')),
                          'init_from: ', 'not a file that torch.save wrote')
    others = tmp_path / 'others' / 'train'  # the same count of speakers, one of them another
    shutil.copytree(train_dir, others)
    first = sorted(os.listdir(others))[0]
    os.rename(others / first, others / ('zz_' + first))
    assert_one_line_error(run_script('train.py', '--train_feat_dir', str(others), '--log_dir',
                                     str(tmp_path / 'ft'), '--val_ratio', '25', '--init_from',
                                     source),
                          'init_from: ', 'other speakers', 'the same speakers in the same order')
    assert not os.path.exists(tmp_path / 'ft')
    hop = load_torch(source)
    hop['feature_settings'] = {**hop['feature_settings'], 'hop_seconds': 0.02}
    torch.save(hop, tmp_path / 'hop.pth')
    assert_one_line_error(run_script(*args, '--init_from', str(tmp_path / 'hop.pth')),
                          'init_from: ', 'hop.pth was trained on features made with '
                          'hop_seconds=0.02; configure.py makes them with hop_seconds=0.01')
    broken = load_torch(source)
    next(iter(broken['state_dict'].values())).view(-1)[0] = float('nan')
    torch.save(broken, tmp_path / 'nan.pth')
    kept = tmp_path / 'kept'  # a log_dir holding a run: nothing is moved for a refused start
    shutil.copytree(log_dir, kept)
    before = sorted(os.listdir(kept))
    assert_one_line_error(run_script(*args[:3], '--log_dir', str(kept), '--val_ratio', '25',
                                     '--init_from', str(tmp_path / 'nan.pth')),
                          'init_from: ', 'nan.pth: its weights are not finite')
    assert_one_line_error(run_script(*args[:3], '--log_dir', str(kept), '--val_ratio', '25',
                                     '--init_from', str(kept / 'checkpoint_2.pth')),
                          'init_from: ', f'is in log_dir {kept}', 'moves aside')
    assert sorted(os.listdir(kept)) == before


def test_resume_on_recordings_of_another_level_says_so(tmp_path, trained_run):
    from dvector.features import LEVEL_FILE
    train_dir = tmp_path / 'tree' / 'train'
    shutil.copytree(trained_run[1], train_dir)
    args = ['train.py', '--train_feat_dir', str(train_dir), '--log_dir', str(tmp_path / 'run'),
            '--batch_size', '8', '--val_ratio', '25', '--embedding_size', '16']
    assert run_script(*args, '--n_epochs', '1').returncode == 0
    (tmp_path / 'tree' / LEVEL_FILE).write_text('-30\n')
    assert_one_line_error(run_script(*args, '--n_epochs', '2', '--resume', 'true'),
                          'checkpoint_1.pth was trained on recordings at -42 dB',
                          'says -30 dB now', LEVEL_FILE)


def test_start_from_checkpoint_loads_the_weights_and_the_class_means(monkeypatch, trained_run):
    """The classifier of the new loss starts at the direction of each class's mean d-vector over
    the training crops; a class without crops keeps its random start."""
    import torch.nn.functional as F

    import train
    from model.losses import build_loss
    log_dir, _, _ = trained_run
    source = os.path.join(log_dir, 'checkpoint_2.pth')
    start, cpu = load_torch(source), torch.device('cpu')
    monkeypatch.setattr(train, 'init_from', source)
    n_bands = start['model_args']['n_bands']
    model = train.build_model_for(4, n_bands, cpu)
    criterion = build_loss('aamsoftmax', embedding_size=128, n_classes=4)
    unseen = criterion.classifier.weight[3].detach().clone()
    inputs = torch.randn(8, 1, n_bands, 100, generator=torch.Generator().manual_seed(0))
    targets = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1])            # class 3 has no crop
    loader = [(inputs[:4], targets[:4]), (inputs[4:], targets[4:])]
    train.start_from_checkpoint(model, criterion, loader, start['speakers'], n_bands, cpu)
    assert all(torch.equal(model.state_dict()[k], w) for k, w in start['state_dict'].items())
    with torch.no_grad():
        embedding, _ = model(inputs)                             # (8, 128), eval mode
    weight = criterion.classifier.weight.detach()
    for c in range(3):
        assert torch.allclose(weight[c], F.normalize(embedding[targets == c].mean(0), dim=0),
                              atol=1e-5)
    assert torch.equal(weight[3], unseen)
