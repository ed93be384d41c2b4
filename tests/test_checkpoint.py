import os

import pytest
import torch

from configure import SetupError
from dvector.checkpoint import (
    WHITENING_KEY,
    list_checkpoints,
    load_model,
    lowest_validation_loss,
    read_checkpoint,
    save_checkpoint,
    select_device,
)
from model import build_model


def fake_run(log_dir, losses):
    args = {'backbone': 'resnet18', 'embedding_size': 16, 'n_classes': 3}
    model = build_model(**args)
    for epoch, loss in enumerate(losses, start=1):
        save_checkpoint(log_dir, epoch, {'epoch': epoch + 1, 'state_dict': model.state_dict(),
                                         'model_args': args, 'valid_loss': loss,
                                         'speakers': ['a', 'b', 'c']})
    return model


def test_best_epoch_and_listing(tmp_path):
    fake_run(str(tmp_path), [3.0, 1.0, 2.0])
    assert list(list_checkpoints(str(tmp_path))) == [1, 2, 3]
    assert lowest_validation_loss(str(tmp_path))[0] == 2
    assert read_checkpoint(str(tmp_path))['cp_num'] == 2
    assert read_checkpoint(str(tmp_path), 3)['valid_loss'] == 2.0


def test_model_rebuilt_from_checkpoint_alone(tmp_path):
    model = fake_run(str(tmp_path), [1.0])
    loaded, checkpoint = load_model(str(tmp_path), 0, torch.device('cpu'))
    x = torch.randn(2, 1, 40, 50)
    assert not loaded.training and checkpoint['speakers'] == ['a', 'b', 'c']
    # equal up to float rounding: load_model folds the BatchNorms into the convolutions
    assert torch.allclose(loaded(x)[0], model.eval()(x)[0], atol=1e-5, rtol=1e-4)


def test_a_whitening_that_does_not_fit_the_model_is_a_clear_error(tmp_path):
    fake_run(str(tmp_path), [1.0])
    checkpoint = read_checkpoint(str(tmp_path), 1)
    for whitening in ({'mean': torch.zeros(99), 'matrix': torch.eye(16), 'layer': 'pooling'},
                      {'mean': torch.zeros(16), 'matrix': torch.eye(8)}, {'mean': torch.zeros(16)}):
        checkpoint[WHITENING_KEY] = whitening
        save_checkpoint(str(tmp_path), 1, checkpoint)
        with pytest.raises(SetupError, match="whitening does not fit its model; fit it again"):
            load_model(str(tmp_path), 0, torch.device('cpu'))


def test_missing_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(SetupError, match='no checkpoint_<epoch>.pth'):
        read_checkpoint(str(tmp_path))
    fake_run(str(tmp_path), [1.0, 0.5])
    with pytest.raises(SetupError, match='available epochs: 1, 2'):
        read_checkpoint(str(tmp_path), 7)
    torch.save({'state_dict': {}}, os.path.join(tmp_path, 'checkpoint_9.pth'))
    with pytest.raises(SetupError, match='missing model_args'):
        read_checkpoint(str(tmp_path), 9)


@pytest.mark.cuda
def test_cpu_fallback():
    assert select_device(False).type == 'cpu'
    if not torch.cuda.is_available():
        assert select_device(True).type == 'cpu'
    else:
        assert select_device(True).type == 'cuda'


def test_keep_best_only_strips_optimizer_and_other_epochs(tmp_path):
    from dvector.checkpoint import keep_best_only
    fake_run(str(tmp_path), [3.0, 1.0, 2.0])
    path = os.path.join(tmp_path, 'checkpoint_2.pth')
    checkpoint = torch.load(path, weights_only=True)
    checkpoint['optimizer'] = {'state': {}}
    torch.save(checkpoint, path)
    assert keep_best_only(str(tmp_path)) == path
    assert list(list_checkpoints(str(tmp_path))) == [2]
    assert 'optimizer' not in read_checkpoint(str(tmp_path))


class NotWeights:
    """Any class: a pickle of it needs more than weights_only allows."""


def test_the_refusal_of_an_unsafe_file_gives_no_advice_to_load_it_unsafely(tmp_path):
    """Issue 27 case 18: torch's message says to re-run with weights_only=False; the project
    says instead that the file is not a checkpoint it can load safely."""
    torch.save({'model': NotWeights()}, str(tmp_path / 'checkpoint_1.pth'))
    with pytest.raises(SetupError) as err:
        read_checkpoint(str(tmp_path), 1)
    message = str(err.value)
    assert 'not one this project can load safely' in message and 'NotWeights' in message
    assert 'weights_only' not in message and '\n' not in message and '\x1b' not in message
    (tmp_path / 'checkpoint_2.pth').write_text('hello')
    with pytest.raises(SetupError, match='not a file that torch.save wrote'):
        read_checkpoint(str(tmp_path), 2)


def run_with_history(log_dir, losses):
    """Checkpoints as train.py writes them: each holds the history of the epochs so far."""
    args = {'backbone': 'resnet18', 'embedding_size': 16, 'n_classes': 3}
    state = build_model(**args).state_dict()
    history = {'epoch': [], 'valid_loss': []}
    for epoch, loss in enumerate(losses, start=1):
        history['epoch'].append(epoch)
        history['valid_loss'].append(loss)
        save_checkpoint(log_dir, epoch, {'epoch': epoch + 1, 'state_dict': state,
                                         'model_args': args, 'valid_loss': loss,
                                         'history': {k: list(v) for k, v in history.items()}})


def counting_loads(monkeypatch):
    """The names of the checkpoint files read_checkpoint loads, in order."""
    import dvector.checkpoint as checkpoint_module
    read, original = [], checkpoint_module.load_torch

    def load(path):
        read.append(os.path.basename(path))
        return original(path)
    monkeypatch.setattr(checkpoint_module, 'load_torch', load)
    return read


def test_cp_num_0_reads_the_last_history_and_the_best_file_only(tmp_path, monkeypatch):
    run_with_history(str(tmp_path), [3.0, 1.0, 2.0, 1.0, 4.0, 5.0])
    read = counting_loads(monkeypatch)
    checkpoint = read_checkpoint(str(tmp_path))
    assert checkpoint['cp_num'] == 4  # the latest of the equal lowest
    assert read == ['checkpoint_6.pth', 'checkpoint_4.pth']
    os.remove(tmp_path / 'checkpoint_4.pth')  # a file removed: the history's others remain
    read.clear()
    assert read_checkpoint(str(tmp_path))['cp_num'] == 2 and len(read) == 2


def test_without_a_history_that_fits_every_file_is_read(tmp_path, monkeypatch):
    run_with_history(str(tmp_path), [3.0, 1.0, 2.0])
    path = str(tmp_path / 'checkpoint_2.pth')
    foreign = torch.load(path, weights_only=True)
    foreign['valid_loss'] = 9.0  # another run's file under the history's best epoch
    save_checkpoint(str(tmp_path), 2, foreign)
    read = counting_loads(monkeypatch)
    assert read_checkpoint(str(tmp_path))['cp_num'] == 3 and len(read) == 4  # 2 + all 3, once
    last = torch.load(str(tmp_path / 'checkpoint_3.pth'), weights_only=True)
    for history in (None, 'foreign', {'epoch': [3], 'valid_loss': [2.0]},
                    {'epoch': [1, 2, 3], 'valid_loss': [3.0, 9.0]}):
        last['history'] = history
        save_checkpoint(str(tmp_path), 3, last)
        read.clear()
        assert read_checkpoint(str(tmp_path))['cp_num'] == 3 and len(read) == 3


def test_cp_num_0_never_chooses_across_runs(tmp_path):
    """Issue 27 case 4: a folder with checkpoint_1 of one run and 2-3 of another (two train.py
    at once) chose the lowest validation loss across them."""
    args = {'backbone': 'resnet18', 'embedding_size': 16, 'n_classes': 3}
    state = build_model(**args).state_dict()
    history = {'epoch': [1, 2, 3], 'valid_loss': [1.0, 2.0, 3.0]}
    for epoch, run, loss in ((1, 'run-a', 0.5), (2, 'run-b', 2.0), (3, 'run-b', 3.0)):
        save_checkpoint(str(tmp_path), epoch, {'epoch': epoch + 1, 'state_dict': state,
                                               'model_args': args, 'valid_loss': loss,
                                               'history': history, 'run_id': run})
    with pytest.raises(SetupError, match=r'2 training runs \(epochs 1; 2, 3\)'):
        read_checkpoint(str(tmp_path))
    assert read_checkpoint(str(tmp_path), 2)['run_id'] == 'run-b'  # a chosen epoch is read
    os.remove(tmp_path / 'checkpoint_1.pth')
    assert read_checkpoint(str(tmp_path))['cp_num'] == 2


def test_a_second_train_py_into_a_log_dir_in_use_refuses(tmp_path, monkeypatch):
    """Issue 27 case 4: two train.py --log_dir R at once both wrote R."""
    import train
    monkeypatch.setattr(train, 'LOG_DIR_WAIT_S', 0.1)
    with train.writing(str(tmp_path / 'R')):
        with pytest.raises(SetupError, match='R: another run is still writing checkpoints there'):
            with train.writing(str(tmp_path / 'R')):
                pass
    with train.writing(str(tmp_path / 'R')):  # released when the run ends
        pass


def test_a_full_disk_is_one_line_and_the_checkpoint_stays_as_it_was(tmp_path, monkeypatch):
    """Issue 27 case 13: a full disk during a checkpoint write was torch's 'enforce fail at
    inline_container.cc' traceback."""
    fake_run(str(tmp_path), [1.0])
    path = str(tmp_path / 'checkpoint_1.pth')
    before = open(path, 'rb').read()

    def full_disk(obj, f):
        f.write(b'PK partial')
        raise RuntimeError('[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0 '
                           'PytorchStreamWriter failed writing file data/0: file write failed')
    monkeypatch.setattr(torch, 'save', full_disk)
    with pytest.raises(SetupError, match='checkpoint_1.pth: cannot write it .the disk is full'):
        save_checkpoint(str(tmp_path), 1, {'epoch': 2})
    assert open(path, 'rb').read() == before and os.listdir(tmp_path) == ['checkpoint_1.pth']


def test_whitening_is_refused_before_the_work_where_it_cannot_be_stored(tmp_path, monkeypatch):
    """Issue 27 case 13: a read-only model folder failed with a traceback after all the work;
    a full disk is known before it too."""
    import shutil

    from dvector.whitening import whiten_checkpoint
    fake_run(str(tmp_path), [1.0])
    no_features = str(tmp_path / 'not_read')  # read after the check: its error would show
    usage = shutil.disk_usage(str(tmp_path))
    monkeypatch.setattr(shutil, 'disk_usage', lambda p: usage._replace(free=1000))
    with pytest.raises(SetupError, match='whitening: not enough room on the disk to rewrite'):
        whiten_checkpoint(str(tmp_path), 0, no_features, torch.device('cpu'))
    monkeypatch.setattr(shutil, 'disk_usage', lambda p: usage)
    access = os.access
    monkeypatch.setattr(os, 'access', lambda p, mode: False if os.path.samefile(p, tmp_path)
                        else access(p, mode))  # as a read-only folder is for a user not root
    with pytest.raises(SetupError, match='whitening: cannot rewrite .* is not a writable folder'):
        whiten_checkpoint(str(tmp_path), 0, no_features, torch.device('cpu'))


def test_a_folder_named_like_a_checkpoint_is_not_one(tmp_path):
    """Hunt: a folder checkpoint_5.pth beside the checkpoints was loaded ('Is a directory')."""
    fake_run(str(tmp_path), [1.0])
    os.makedirs(tmp_path / 'checkpoint_5.pth')
    assert list(list_checkpoints(str(tmp_path))) == [1]
    assert read_checkpoint(str(tmp_path))['cp_num'] == 1


def test_the_band_count_checked_is_the_one_model_args_records(tmp_path):
    """No guess from feature_settings (the fallback for checkpoints from before n_bands)."""
    args = {'backbone': 'resnet18', 'embedding_size': 16, 'n_classes': 3, 'n_bands': 40}
    settings = {'sample_rate': 16000, 'filter_bank': 40, 'use_logscale': True,
                'use_delta': False, 'use_scale': False}
    for folder, model_args in (('now', args), ('before', dict(args, n_bands=None))):
        model_args = {k: v for k, v in model_args.items() if v is not None}
        save_checkpoint(str(tmp_path / folder), 1, {
            'epoch': 2, 'state_dict': build_model(**model_args).state_dict(),
            'model_args': model_args, 'feature_settings': settings})
    assert load_model(str(tmp_path / 'now'), 0, torch.device('cpu'))[0].n_bands == 40
    assert load_model(str(tmp_path / 'before'), 0, torch.device('cpu'))[0].n_bands is None


@pytest.mark.parametrize('shipped', ['model_saved', 'model_real'])
def test_the_shipped_models_load_with_their_band_count(shipped):
    """Their model_args keep the key n_bands (and n_classes) that the code uses."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    model, checkpoint = load_model(os.path.join(root, shipped), 0, torch.device('cpu'))
    assert model.n_bands == 40 == checkpoint['model_args']['n_bands']
    assert checkpoint['model_args']['n_classes'] >= 10  # its training speakers


def saved_for_resume(log_dir: str, monkeypatch, backbone: str = 'resnet18') -> tuple:
    """train.py's checkpoint of epoch 1 of a tiny model in ``log_dir``; what resume_state
    takes."""
    import train
    from model.losses import ModelWithLoss, build_loss
    for name, value in (('log_dir', log_dir), ('embedding_size', 16), ('backbone', backbone),
                        ('channels_last', False)):
        monkeypatch.setattr(train, name, value)
    model = train.build_model_for(3, 40, torch.device('cpu'))
    criterion = build_loss(embedding_size=16, n_classes=3, **train.loss_args())
    optimizer = train.create_optimizer(ModelWithLoss(model, criterion))
    scheduler = train.create_scheduler(optimizer)
    history = {'epoch': [1], 'train_loss': [2.0], 'valid_loss': [1.5], 'valid_acc': [40.0]}
    run = {'run_id': 'run-1', 'recording_level_db': -42.0, 'started_from': ''}
    train.save_epoch(model, criterion, optimizer, scheduler, ['a', 'b', 'c'], 40, history, run)
    return model, criterion, optimizer, scheduler, ['a', 'b', 'c'], 40, -42.0


def test_resume_takes_only_checkpoints_in_the_format_train_py_writes(tmp_path, monkeypatch):
    """Issue 30 item 4: no defaults filled in for checkpoints of older versions (model_args
    without pooling or n_bands, no loss_args or speed_factors): they are refused, one line."""
    import train
    state = saved_for_resume(str(tmp_path), monkeypatch)
    assert train.resume_state(*state) == (2, {'epoch': [1], 'train_loss': [2.0],
                                              'valid_loss': [1.5], 'valid_acc': [40.0]},
                                          {'run_id': 'run-1', 'recording_level_db': -42.0,
                                           'started_from': ''})
    path = str(tmp_path / 'checkpoint_1.pth')
    saved = torch.load(path, weights_only=True)
    older = dict(saved, model_args={k: v for k, v in saved['model_args'].items()
                                    if k not in ('pooling', 'n_bands', 'stem_stride')})
    torch.save(older, path)
    with pytest.raises(SetupError, match=r"was trained with \{'backbone': 'resnet18', "
                                         r"'embedding_size': 16, 'n_classes': 3\}"):
        train.resume_state(*state)
    for key in ('loss_args', 'speed_factors', 'optimizer'):
        torch.save({k: v for k, v in saved.items() if k != key}, path)
        with pytest.raises(SetupError, match=rf'checkpoint_1.pth has no {key}: not a run to '
                                             'continue .a shipped model keeps no optimizer'):
            train.resume_state(*state)


@pytest.mark.parametrize('backbone, recorded', [('resnet18', {'stem_stride': 1}), ('vgg', {})])
def test_a_resnet_records_its_stem_stride_always_and_other_backbones_never(
        tmp_path, monkeypatch, backbone, recorded):
    saved_for_resume(str(tmp_path), monkeypatch, backbone)
    args = torch.load(str(tmp_path / 'checkpoint_1.pth'), weights_only=True)['model_args']
    assert args == {'backbone': backbone, 'embedding_size': 16, 'n_classes': 3,
                    'pooling': 'avg', 'n_bands': 40, **recorded}
    build_model(**args)  # the arguments rebuild the model
