"""Train the d-vector model: a ResNet speaker classifier whose last hidden layer is the embedding.

Edit the settings below, or give a recipe file and any setting on the command line:
    python train.py --n_epochs 2 --train_feat_dir data/tutorial_db/feat_logfbank_nfilt40/train
    python train.py recipes/best_slice.py --seed 2
Several GPUs (or CPU processes): torchrun --nproc_per_node=4 train.py  (batch_size is per process)
"""
import contextlib
import math
import os
import random
import time
import uuid

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

import configure as c
from DB_wav_reader import read_training_folders
from dvector import augment, cli
from dvector import distributed as dist
from dvector.checkpoint import (
    list_checkpoints,
    read_checkpoint,
    read_checkpoint_file,
    save_checkpoint,
    set_aside_previous_run,
    weights_are_finite,
)
from dvector.features import LEVEL_FILE, LEVEL_KEY, feature_settings, tree_level_db
from dvector.fileio import check_writable_dir, folder_lock, remove_stale_temporaries
from dvector.pair_batches import PairBatchSampler
from dvector.threshold import describe, fit_validation_threshold
from dvector.whitening import LAYERS, whiten_checkpoint
from model import BACKBONES, build_model
from model.losses import LOSSES, ModelWithLoss, build_loss, loss_settings
from model.pooling import POOLINGS
from SR_Dataset import VALID_MAX_FRAMES, DvectorDataset, collate_fn_feat_padded

# ---- settings ---------------------------------------------------------------------------
use_cuda = True                      # train on the GPU when there is one (else the CPU)
train_feat_dir = c.TRAIN_FEAT_DIR    # <dir>/<speaker>/<utterance>.p; several: 'dir1,dir2'
val_ratio = 10                       # percent of the files held out for validation
embedding_size = 128                 # size of the d-vector (the fc0 layer)
backbone = 'resnet18'                # resnet18/34/50/101/152, vgg, lstm, ecapa (ECAPA-TDNN)
pooling = 'avg'                      # avg (the tutorial's), stats, attentive_stats, last
stem_stride = 1                      # resnets: 2 = stem halves bands and frames, 1/4 compute
loss_type = 'softmax'                # softmax (tutorial), center, asoftmax, amsoftmax, aamsoftmax
                                     #   softmaxproto (softmax + angular prototypical, pairs)
margin = 0.0                         # margin: asoftmax (integer m), am-, aamsoftmax; 0 = default
scale = 0.0                          # scale s: amsoftmax, aamsoftmax (asoftmax: |x|); 0 = default
center_weight = 0.0                  # weight of the center loss term (center); 0 = 0.01
spec_augment = False                 # SpecAugment: mask a band stretch and a frame stretch per crop
freq_mask = 8                        # at most this many consecutive bands masked (spec_augment)
time_mask = 20                       # at most this many consecutive frames masked (spec_augment)
band_limit = 0.0                     # share of crops cut to a telephone band (nothing above
                                     # 3.4-4.4 kHz), so 8 kHz recordings keep their voice
speed_perturb = False                # speed-perturbed copies of each speaker as new speakers
speed_factors = '0.9,1.1'            # the speeds of those copies (speed_perturb; 3x classes)
win_size = c.NUM_WIN_SIZE            # training crop length in frames
start = 1                            # number of the first epoch
n_epochs = 30                        # number of epochs: start ... start + n_epochs - 1
lr = 1e-1                            # initial learning rate
wd = 1e-4                            # weight decay
optimizer_type = 'sgd'               # 'sgd' (momentum 0.9), 'adam' or 'adagrad'
lr_schedule = 'plateau'              # 'plateau' (the tutorial's ReduceLROnPlateau) or 'cosine'
batch_size = 64                      # training crops per batch
valid_batch_size = 16                # whole utterances per validation batch
valid_by_length = True               # validation batches of similar length (fast, little
                                     # padding); False: the tutorial's (the split's random
                                     # order, each batch tiled to its longest utterance)
use_shuffle = True                   # shuffle the training set every epoch
log_dir = 'model_saved'              # where checkpoints and loss_plot.png are written
log_interval = 84                    # print a progress line every this many batches
seed = 1                             # random seed: the same split and crops every run
resume = False                       # continue from the last checkpoint in log_dir
init_from = ''                       # fine-tune: start the model's weights from this checkpoint
                                     # file (same model and speakers; loss, optimizer, schedule
                                     # start fresh; resuming: the run's own start, not reloaded)
channels_last = True                 # channels_last memory format (faster on CPUs and GPUs)
use_amp = True                       # mixed precision (bf16/fp16) on CUDA; no effect on CPU
num_workers = 0                      # DataLoader worker processes (crops are made in memory)
in_memory = True                     # read all features once into RAM when they fit
whiten = False                       # then fit within-speaker whitening of the d-vectors into
                                     # the best checkpoint (tools/whitening.py; lowers the EER)
whiten_layer = 'embedding'           # fit it on the d-vectors; 'pooling': on the pooled
                                     # statistics, + LDA; 'both': the two side by side
whole_utterance = False              # embed each utterance whole, not as a sum of test_frames
                                     # pieces (saved in the checkpoint: whitening, enroll and
                                     # scoring follow it; for stats pooling)
# ------------------------------------------------------------------------------------------
LOG_DIR_WAIT_S = 5  # a second run into a log_dir in use refuses after this: a run takes hours
# what resuming reads from the last checkpoint besides its weights and history (save_epoch
# writes them all)
RESUMED = ('model_args', 'loss_args', 'loss_state_dict', 'speakers', 'speed_factors',
           'optimizer', 'scheduler')
SETTING_RULES = {  # the allowed values of each setting, checked before any work
    'use_cuda': cli.FLAG, 'train_feat_dir': cli.NAME, 'val_ratio': cli.between(1, 99),
    'embedding_size': cli.at_least(2), 'backbone': cli.one_of(*BACKBONES),
    'pooling': cli.one_of(*POOLINGS), 'stem_stride': cli.one_of(1, 2),
    'loss_type': cli.one_of(*LOSSES), 'margin': cli.at_least(0), 'scale': cli.at_least(0),
    'center_weight': cli.at_least(0), 'spec_augment': cli.FLAG, 'freq_mask': cli.at_least(0),
    'time_mask': cli.at_least(0), 'band_limit': cli.between(0, 1), 'speed_perturb': cli.FLAG,
    'speed_factors': cli.NAME,
    'win_size': cli.at_least(cli.MIN_PIECE_FRAMES), 'start': cli.at_least(1),
    'n_epochs': cli.at_least(1),
    'lr': cli.above(0, 10), 'wd': cli.between(0, 1),
    'optimizer_type': cli.one_of('sgd', 'adam', 'adagrad'),
    'lr_schedule': cli.one_of('plateau', 'cosine'), 'batch_size': cli.at_least(2),
    'valid_batch_size': cli.at_least(1), 'valid_by_length': cli.FLAG, 'use_shuffle': cli.FLAG,
    'log_dir': cli.FOLDER,
    'log_interval': cli.at_least(1), 'seed': cli.between(0, 2 ** 32 - 1), 'resume': cli.FLAG,
    'init_from': cli.OPTIONAL_FILE, 'channels_last': cli.FLAG, 'use_amp': cli.FLAG,
    'num_workers': cli.at_least(0),
    'in_memory': cli.FLAG, 'whiten': cli.FLAG, 'whiten_layer': cli.one_of(*LAYERS),
    'whole_utterance': cli.FLAG}


class AverageMeter:
    """Keeps the latest value and the running average."""

    def __init__(self):
        self.val, self.sum, self.count, self.avg = 0.0, 0.0, 0, 0.0

    def update(self, val: float, n: int = 1) -> None:
        self.val, self.sum, self.count = val, self.sum + val * n, self.count + n
        self.avg = self.sum / self.count


def log(message: str) -> None:
    """Print on rank 0 only (every rank runs the same code under torchrun), above the bar."""
    if dist.is_main_process():
        tqdm.write(message)


def split_train_dev(train_feat_dir: str, valid_ratio: int) -> tuple:
    """The slides' split: a random ``valid_ratio`` percent of the feature files for validation,
    the others for training; returns the two tables and the sorted speaker list."""
    table = read_training_folders(train_feat_dir)
    total = len(table)
    valid_len = int(total * valid_ratio / 100.0)
    if not 0 < valid_len < total:
        raise cli.SetupError(f'val_ratio={valid_ratio}: gives {valid_len} of {total} files to '
                             'validation; need at least one file on each side')
    speakers = sorted(table['speaker_id'].unique())
    if len(speakers) < 2:
        raise cli.SetupError(f'{train_feat_dir}: {len(speakers)} speaker; a speaker classifier '
                             'needs two or more (one folder per speaker)')
    shuffled = table.sample(frac=1, random_state=seed).reset_index(drop=True)
    train_table, valid_table = keep_every_speaker(shuffled, total - valid_len)
    valid_len = len(valid_table)
    if not valid_len:
        raise cli.SetupError(f'{train_feat_dir}: every validation file would be the only one of '
                             'its speaker; give the speakers more files or a lower val_ratio')
    log(f'\nTraining set {len(train_table)} utts ({len(train_table) / total * 100:0.1f}%)')
    log(f'Validation set {valid_len} utts ({valid_len / total * 100:0.1f}%)')
    log(f'Total {total} utts')
    return train_table, valid_table, speakers


def keep_every_speaker(shuffled, n_train: int) -> tuple:
    """(training, validation) tables: the first ``n_train`` rows of the shuffled table for
    training, the rest for validation, except that a speaker whose files all fell in validation
    keeps its first one for training (a speaker never trained on is a class the model never
    learns); says which speakers."""
    in_train, moved = set(shuffled['speaker_id'].iloc[:n_train]), []
    for row in shuffled.index[n_train:]:
        speaker = shuffled.at[row, 'speaker_id']
        if speaker not in in_train:  # its first validation file goes to training
            in_train.add(speaker)
            moved.append(row)
    if moved:
        names = sorted(shuffled.loc[moved, 'speaker_id'])
        log(f'note: {len(moved)} speakers had all their files in validation; one file of each '
            'is trained on instead: ' + ', '.join(names[:10])
            + (f' and {len(names) - 10} more' if len(names) > 10 else ''))
    train_rows = list(shuffled.index[:n_train]) + moved
    valid_rows = shuffled.index[n_train:].difference(moved, sort=False)
    return shuffled.loc[train_rows], shuffled.loc[valid_rows]


def load_dataset(val_ratio: int) -> tuple:
    """The slides' load_dataset: the training set (one random crop per utterance) and the
    validation set (whole utterances); returns (train_dataset, valid_dataset, n_classes).
    ``train_dataset.speakers`` lists the speakers (index = class) and ``train_dataset.n_bands``
    the band count, read from the files."""
    train_table, valid_table, speakers = split_train_dev(train_feat_dir, val_ratio)
    spk_to_idx = {s: i for i, s in enumerate(speakers)}
    train_dataset = DvectorDataset(train_table['filename'], train_table['speaker_id'], spk_to_idx,
                                   win_size=win_size, in_memory=in_memory,
                                   speed_factors=parsed_speed_factors(),
                                   perturb=augment.speed_perturb)
    valid_dataset = DvectorDataset(valid_table['filename'], valid_table['speaker_id'],
                                   spk_to_idx, train=False, in_memory=in_memory,
                                   by_length=valid_by_length)
    train_dataset.n_bands = train_dataset.common_n_bands(valid_dataset)
    train_dataset.speakers = speakers
    return train_dataset, valid_dataset, n_classes_for(speakers)


def make_loaders(train_dataset: DvectorDataset, valid_dataset: DvectorDataset,
                 device: torch.device) -> tuple:
    """Training crops and whole-utterance validation batches; one shard per rank."""
    short = train_dataset.short_utterances()
    if short:
        log(f'warning: {len(short)} training utterances are shorter than {win_size} '
            f'frames after the trim and are tiled to fill the window (first: {short[0]})')
    long = [f for f, x in zip(valid_dataset.files, valid_dataset.feats or []) if len(x) >
            VALID_MAX_FRAMES]
    if long:
        log(f'note: {len(long)} validation utterances are longer than {VALID_MAX_FRAMES} frames: '
            f'validated on their middle {VALID_MAX_FRAMES} (first: {long[0]})')
    ranks = dist.world_size()
    if ranks > len(valid_dataset):
        raise cli.SetupError(f'torchrun: {ranks} processes but only {len(valid_dataset)} '
                             f'validation files to share; use --nproc_per_node='
                             f'{len(valid_dataset)} or fewer')
    pin = device.type == 'cuda'
    valid_sampler = DistributedSampler(valid_dataset, shuffle=False) if ranks > 1 else None
    valid_loader = DataLoader(valid_dataset, batch_size=valid_batch_size, sampler=valid_sampler,
                              collate_fn=collate_fn_feat_padded, pin_memory=pin)
    return training_loader(train_dataset, ranks, pin), valid_loader


def training_loader(train_set: DvectorDataset, ranks: int, pin: bool) -> DataLoader:
    """Random batches of crops, or batches of same-class pairs for a loss that compares crops
    (``softmaxproto``); one shard per rank."""
    workers = dict(num_workers=num_workers, pin_memory=pin, persistent_workers=num_workers > 0)
    if getattr(LOSSES[loss_type], 'NEEDS_PAIRS', False):
        pairs = PairBatchSampler(train_set.labels, batch_size, len(train_set.speed_factors),
                                 seed, dist.rank(), ranks)
        return DataLoader(train_set, batch_sampler=pairs, **workers)
    sampler = DistributedSampler(train_set, shuffle=use_shuffle, seed=seed) if ranks > 1 else None
    per_rank = -(-len(train_set) // ranks)
    return DataLoader(train_set, batch_size=batch_size, sampler=sampler,
                      shuffle=use_shuffle and sampler is None,
                      drop_last=per_rank % batch_size == 1,  # BatchNorm needs 2 or more
                      **workers)


def autocast(device: torch.device):
    """bf16 (or fp16 where bf16 is missing) autocast on CUDA when use_amp; else a no-op."""
    enabled = use_amp and device.type == 'cuda'
    dtype = torch.bfloat16 if enabled and torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=enabled)


def to_device(inputs: torch.Tensor, targets: torch.Tensor, device: torch.device) -> tuple:
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    inputs = inputs.to(device, non_blocking=True).contiguous(memory_format=memory_format)
    return inputs, targets.to(device, non_blocking=True)


def create_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    """``model``: the model with its loss (a margin loss's classifier is trained too)."""
    if optimizer_type == 'sgd':
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, dampening=0,
                               weight_decay=wd)
    if optimizer_type == 'adam':
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=wd)
    return torch.optim.Adagrad(model.parameters(), lr=lr, weight_decay=wd)


def train(train_loader: DataLoader, model: nn.Module, optimizer, scaler, epoch: int,
          device: torch.device) -> float:
    """One epoch over the training crops; returns the mean loss over all ranks. ``model``: the
    model with its loss, ``model(inputs, targets) -> (loss, class scores)``."""
    model.train()
    batch_time, losses, train_acc = AverageMeter(), AverageMeter(), AverageMeter()
    if isinstance(train_loader.sampler, DistributedSampler):
        train_loader.sampler.set_epoch(epoch)
    seen_per_batch = batch_size * dist.world_size()
    bar = tqdm(train_loader, desc=f'epoch {epoch}', unit='batch', leave=False,
               disable=None if dist.is_main_process() else True)  # None: on a terminal only
    end = time.time()
    for batch_idx, (inputs, targets) in enumerate(bar):
        inputs, targets = to_device(inputs, targets, device)  # (B, 1, 40, 100), (B,)
        if spec_augment:                                      # training crops only
            inputs = augment.spec_augment(inputs, freq_mask, time_mask)
        if band_limit > 0:                                    # telephone-band crops
            inputs = augment.band_limit(inputs, band_limit)
        with autocast(device):
            loss, scores = model(inputs, targets)             # scores: (B, n_classes)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        n = targets.size(0)
        if dist.world_size() == 1:  # under torchrun all ranks check the summed loss below
            check_finite(loss.item(), epoch, 'training')
        losses.update(loss.item(), n)
        train_acc.update((scores.argmax(1) == targets).float().mean().item() * 100, n)
        batch_time.update(time.time() - end)
        end = time.time()
        bar.set_postfix(loss=f'{losses.avg:.4f}', acc=f'{train_acc.avg:.2f}')
        if batch_idx % log_interval == 0:
            log(f'Train Epoch: {epoch:3d} [{batch_idx * seen_per_batch:8d}/'
                f'{len(train_loader.dataset):8d} ({100.0 * batch_idx / len(train_loader):3.0f}%)]\t'
                f'Time {batch_time.val:.3f} ({batch_time.avg:.3f})\t'
                f'Loss {losses.avg:.4f}\tAcc {train_acc.avg:.4f}')
    loss_sum, count = dist.sum_across_ranks([losses.sum, losses.count], device)
    check_finite(loss_sum / count, epoch, 'training')
    return loss_sum / count


@torch.no_grad()
def validate(val_loader: DataLoader, model: nn.Module, device: torch.device,
             n_speakers: int, epoch: int) -> tuple:
    """Loss and accuracy (%) on whole validation utterances, summed over all ranks.
    A speed-perturbed copy of the right speaker counts as right (class % n_speakers: the
    labels that SR_Dataset.DvectorDataset gives perturbed crops)."""
    model.eval()
    loss_sum = correct = count = 0.0
    for inputs, targets in val_loader:
        inputs, targets = to_device(inputs, targets, device)  # (B, 1, 40, T_max)
        with autocast(device):
            loss, scores = model(inputs, targets)
        loss_sum += loss.item() * targets.size(0)
        correct += (scores.argmax(1) % n_speakers == targets).sum().item()
        count += targets.size(0)
    loss_sum, correct, count = dist.sum_across_ranks([loss_sum, correct, count], device)
    log(f'  * Validation: Loss {loss_sum / count:.4f}\tAcc {correct / count * 100:.4f}')
    check_finite(loss_sum / count, epoch, 'validation')
    return loss_sum / count, correct / count * 100


def check_finite(loss: float, epoch: int, which: str) -> None:
    """Stop a run whose loss is no longer a number: its weights are lost, and so is every later
    epoch. Checkpoints already written are those of finite epochs."""
    if not math.isfinite(loss):
        raise cli.SetupError(f'epoch {epoch}: the {which} loss is {loss} (not a finite number); '
                             f'the learning rate is likely too high (lr={lr:g}): try a lower '
                             '--lr. Nothing of this epoch was saved')


def visualize_the_losses(history: dict, best: int) -> str:
    """The slides' loss plot: training and validation loss per epoch, the lowest validation
    loss marked ('Early Stopping Checkpoint'), saved as <log_dir>/loss_plot.png."""
    from dvector import plots  # matplotlib only when the plot is drawn (0.4 s off each start)
    return plots.plot_losses(history['epoch'], history['train_loss'], history['valid_loss'],
                             best, os.path.join(log_dir, 'loss_plot.png'))


def resume_state(model: nn.Module, criterion: nn.Module, optimizer, scheduler,
                 speakers: list, n_bands: int, level_db: float) -> tuple:
    """Load the last checkpoint of log_dir into the model and optimizer; (next epoch, history,
    the record of the run it continues: save_epoch's ``run``). ``level_db``: the training
    folders' speech level now, which must be the run's."""
    checkpoints = list_checkpoints(log_dir)
    if not checkpoints:
        raise cli.SetupError(f'resume: no checkpoint in {log_dir} to resume from')
    last = max(checkpoints)
    checkpoint = read_checkpoint(log_dir, last)
    missing = [k for k in RESUMED if k not in checkpoint]
    if missing:
        raise cli.SetupError(f'resume: {checkpoints[last]} has no ' + ', '.join(missing)
                             + ': not a run to continue (a shipped model keeps no optimizer '
                             'state); train a new run instead (--resume false)')
    trained, trained_loss = checkpoint['model_args'], checkpoint['loss_args']
    now = model_args(n_classes_for(speakers), n_bands)
    if (trained != now or trained_loss != loss_args() or checkpoint['speakers'] != speakers
            or checkpoint['speed_factors'] != list(parsed_speed_factors())):
        raise cli.SetupError(f'resume: {checkpoints[last]} was trained with {trained} '
                             f'{trained_loss} on other speakers or settings; now {now} '
                             f'{loss_args()}')
    check_same_features(checkpoint, f'resume: {checkpoints[last]}', level_db)
    run = {'run_id': checkpoint.get('run_id'), LEVEL_KEY: level_db,
           'started_from': check_resumed_start(checkpoint, checkpoints[last])}
    history = resumable_history(checkpoint, checkpoints[last])
    try:
        model.load_state_dict(checkpoint['state_dict'])
        criterion.load_state_dict(checkpoint['loss_state_dict'])
        optimizer.load_state_dict(checkpoint['optimizer'])
        scheduler.load_state_dict(checkpoint['scheduler'])
    except Exception as err:  # an untrusted file: any way its states fail is one line
        raise cli.SetupError(f'resume: {checkpoints[last]}: its saved states do not fit this '
                             f'run ({type(err).__name__}); train a new run (--resume false)') \
            from None
    log(f'=> resuming from {checkpoints[last]} at epoch {checkpoint["epoch"]}')
    return checkpoint['epoch'], history, run


def check_same_features(checkpoint: dict, what: str, level_db: float = None) -> None:
    """SetupError unless the checkpoint's features were made as configure.py makes them now
    (window, hop, bands, ...; and, given ``level_db``, from recordings at the training
    folders' level now): its weights would see other inputs."""
    if level_db is not None and checkpoint.get(LEVEL_KEY, level_db) != level_db:
        raise cli.SetupError(f'{what} was trained on recordings at {checkpoint[LEVEL_KEY]:g} '
                             f'dB; train_feat_dir {train_feat_dir} says {level_db:g} dB now '
                             f'(its {LEVEL_FILE}; without one, the tutorial DB\'s level)')
    trained = checkpoint.get('feature_settings')
    if isinstance(trained, dict) and trained != feature_settings():
        differ = sorted(k for k in trained.keys() | feature_settings().keys()
                        if trained.get(k) != feature_settings().get(k))
        raise cli.SetupError(f'{what} was trained on features made with ' + ', '.join(
            f'{k}={trained.get(k)!r}' for k in differ) + '; configure.py makes them with '
            + ', '.join(f'{k}={feature_settings().get(k)!r}' for k in differ))


def check_resumed_start(checkpoint: dict, path: str) -> str:
    """With resume, init_from is not loaded again (the run's own weights are); it must name the
    file the resumed run started from, so that a recipe of fine-tuning resumes as it is.
    Returns that file ('' for random weights), which each later checkpoint records again."""
    started = checkpoint.get('started_from')
    if started is None:  # a checkpoint of before started_from: its own call's init_from
        settings = checkpoint.get('train_settings')
        started = settings.get('init_from') if isinstance(settings, dict) else ''
    started = started if isinstance(started, str) else ''
    if not init_from:
        return started
    if not started or os.path.realpath(started) != os.path.realpath(init_from):
        raise cli.SetupError(f'resume: {path} continues a run that started from '
                             f'{started or "random weights"}, not init_from {init_from}; give '
                             'that init_from (or none), or train a new run (--resume false)')
    log(f'=> init_from {init_from}: not loaded again, the resumed run started from it')
    return started


def start_from_checkpoint(model: nn.Module, criterion: nn.Module, train_loader: DataLoader,
                          speakers: list, n_bands: int, device: torch.device) -> None:
    """Fine-tuning: the model's weights from init_from (the same model, speakers and speeds:
    class k must be the same person), and a loss with class weights of its own starts them at
    the class means of the training crops."""
    if os.path.dirname(os.path.realpath(init_from)) == os.path.realpath(log_dir):
        raise cli.SetupError(f'init_from: {init_from} is in log_dir {log_dir}, whose checkpoints '
                             'this new run moves aside; copy it out of the folder, or give '
                             'another log_dir')
    try:
        checkpoint = read_checkpoint_file(init_from)
    except cli.SetupError as err:
        raise cli.SetupError(f'init_from: {err}') from None
    if not weights_are_finite(checkpoint['state_dict']):
        raise cli.SetupError(f'init_from: {init_from}: its weights are not finite (NaN or '
                             'infinite); start from another checkpoint')
    check_same_features(checkpoint, f'init_from: {init_from}')
    n_classes = n_classes_for(speakers)
    trained, now = checkpoint['model_args'], model_args(n_classes, n_bands)
    if trained != now:
        raise cli.SetupError(f'init_from: {init_from} is a model {trained}; this run builds '
                             f'{now} (the same backbone, sizes and classes are needed)')
    if (checkpoint.get('speakers') != speakers
            or checkpoint.get('speed_factors', []) != list(parsed_speed_factors())):
        raise cli.SetupError(f'init_from: {init_from} was trained on other speakers or speed '
                             f'factors than train_feat_dir {train_feat_dir} gives now; its '
                             'classes would be other people (the same speakers in the same '
                             'order, and the same speed_factors, are needed)')
    try:
        model.load_state_dict(checkpoint['state_dict'])
    except Exception as err:  # an untrusted file: any way its weights fail is one line
        raise cli.SetupError(f'init_from: {init_from}: its weights do not fit this model '
                             f'({type(err).__name__})') from None
    log(f'=> starting from {init_from}')
    criterion.start_from_class_means(class_means(model, train_loader, n_classes, device))


@torch.no_grad()
def class_means(model: nn.Module, train_loader: DataLoader, n_classes: int,
                device: torch.device) -> torch.Tensor:
    """(n_classes, E) mean d-vector of each class over one pass of the training crops; a class
    with no crop gets zeros (its weights then keep their random start)."""
    model.eval()
    sums = torch.zeros(n_classes, embedding_size, device=device)
    counts = torch.zeros(n_classes, device=device)
    for inputs, targets in tqdm(train_loader, desc='class means', unit='batch', leave=False,
                                disable=None if dist.is_main_process() else True):
        inputs, targets = to_device(inputs, targets, device)  # (B, 1, 40, win), (B,)
        with autocast(device):
            embedding, _ = model(inputs)                      # (B, E)
        sums.index_add_(0, targets, embedding.float())
        counts.index_add_(0, targets, torch.ones_like(targets, dtype=torch.float))
    return sums / counts.clamp(min=1).unsqueeze(1)            # (n_classes, E)


def resumable_history(checkpoint: dict, path: str) -> dict:
    """The checkpoint's training history, checked: ``epoch`` (the next one) a whole number,
    and the four lists of one number per epoch trained; SetupError otherwise (a checkpoint of
    an older version, or another program's)."""
    keys = ('epoch', 'train_loss', 'valid_loss', 'valid_acc')
    history, epoch = checkpoint.get('history'), checkpoint.get('epoch')
    if type(epoch) is not int or epoch < 2:
        raise cli.SetupError(f'resume: {path} has no usable next epoch ({cli.brief(epoch)}); '
                             'train a new run instead (--resume false)')
    usable = isinstance(history, dict) and all(isinstance(history.get(k), list) for k in keys)
    if usable:
        lengths = {len(history[k]) for k in keys}
        usable = len(lengths) == 1 and lengths.pop() > 0 and history['epoch'][-1] == epoch - 1 \
            and all(cli.is_number(v) for k in keys for v in history[k])
    if not usable:
        raise cli.SetupError(f'resume: {path} has no complete training history (the epoch, '
                             'losses and accuracy of each epoch); train a new run instead '
                             '(--resume false)')
    return {k: list(history[k]) for k in keys}


def parsed_speed_factors() -> tuple:
    """speed_factors as floats when speed_perturb is on, else () (no copies)."""
    if not speed_perturb:
        return ()
    try:
        factors = tuple(float(f) for f in speed_factors.split(','))
    except ValueError:
        factors = ()
    if not factors or any(not 0.5 <= f <= 2.0 or f == 1.0 for f in factors):
        raise cli.SetupError(f'speed_factors={speed_factors!r}: give comma-separated speeds '
                             'between 0.5 and 2.0 other than 1.0, e.g. 0.9,1.1')
    return factors


def n_classes_for(speakers: list) -> int:
    """One class per speaker, and one more per speaker for each speed-perturbed copy."""
    return len(speakers) * (1 + len(parsed_speed_factors()))


def model_args(n_classes: int, n_bands: int) -> dict:
    """What rebuilds the model (saved in checkpoints): the band count is the data's."""
    args = {'backbone': backbone, 'embedding_size': embedding_size, 'n_classes': n_classes,
            'pooling': pooling, 'n_bands': n_bands or c.FILTER_BANK}
    if backbone.startswith('resnet'):  # the other trunks have no stem of that kind
        args['stem_stride'] = stem_stride
    return args


def loss_args() -> dict:
    """The loss and its settings, defaults filled in (saved in checkpoints as 'loss_args')."""
    return {'loss_type': loss_type, **loss_settings(loss_type, margin, scale, center_weight)}


def check_choices() -> None:
    """What SETTING_RULES cannot say alone (settings that depend on each other), checked before
    any data is read (one clear error line)."""
    build_loss(embedding_size=embedding_size, n_classes=2, **loss_args())
    if parsed_speed_factors() and c.USE_DELTA:
        raise cli.SetupError('speed_perturb: works on plain filterbank bands; configure.py has '
                             'USE_DELTA = True')
    check_writable_dir(log_dir, 'log_dir')
    check_log_dir_outside_the_data()
    training_level_db()
    if stem_stride != 1 and not backbone.startswith('resnet'):
        raise cli.SetupError(f'stem_stride={stem_stride}: 1, or 2 with a resnet backbone '
                             f'(backbone is {backbone!r})')


def check_log_dir_outside_the_data() -> None:
    """SetupError when log_dir is a training folder or inside one: its checkpoints and plot
    would be written among the speakers' features."""
    mine = os.path.realpath(log_dir)
    for folder in train_feat_dir.split(','):
        try:
            speakers = [os.path.realpath(os.path.join(folder, name)) for name in os.listdir(folder)]
        except OSError:  # not there or not readable: the dataset's reading says so
            speakers = []
        # linked speakers (split_heldout's layout): their folders, and the folder they are in
        for data in {os.path.realpath(folder), *speakers, *map(os.path.dirname, speakers)}:
            if mine == data or mine.startswith(data + os.sep):
                raise cli.SetupError(f'--log_dir {log_dir}: is inside train_feat_dir {folder}; '
                                     'give a folder outside the training data')


def training_level_db() -> float:
    """The speech level of the recordings the training features were made from (each folder's
    dvector.features.LEVEL_FILE; the tutorial DB's without one): stored in the checkpoint, so
    that recordings given to the model later are set to it. Folders of two levels: refused."""
    levels = {folder: tree_level_db(folder) for folder in train_feat_dir.split(',')}
    if len(set(levels.values())) > 1:
        raise cli.SetupError('train_feat_dir: its folders were made from recordings at other '
                             'speech levels (' + ', '.join(f'{f}: {v:g} dB' for f, v in
                                                           levels.items())
                             + '); make them at one level (make_demo_db.py --speech_level)')
    return next(iter(levels.values()))


def create_scheduler(optimizer):
    """The tutorial's ReduceLROnPlateau on the validation loss, or a cosine decay by epoch."""
    if lr_schedule == 'cosine':
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=n_epochs, eta_min=lr * 1e-3)
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, 'min', patience=2, min_lr=1e-4, factor=0.1)


def step_scheduler(scheduler, optimizer, valid_loss: float) -> None:
    """One scheduler step per epoch; a drop of the learning rate is printed."""
    before = optimizer.param_groups[0]['lr']
    if lr_schedule == 'cosine':
        scheduler.step()
    else:
        scheduler.step(valid_loss)
    after = optimizer.param_groups[0]['lr']
    if lr_schedule == 'plateau' and after < before:
        log(f'Learning rate reduced from {before:g} to {after:g} (validation loss stalled)')


def build_model_for(n_classes: int, n_bands: int, device: torch.device) -> nn.Module:
    """The model on its device, in channels_last memory format when asked."""
    model = build_model(**model_args(n_classes, n_bands)).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def wrap_distributed(model: nn.Module, device: torch.device) -> nn.Module:
    """``model``: the model with its loss. A margin loss leaves the model's ``last`` unused."""
    if dist.world_size() == 1:
        return model
    ids = [device.index] if device.type == 'cuda' else None
    return nn.parallel.DistributedDataParallel(
        model, device_ids=ids, find_unused_parameters=not model.loss.USES_LOGITS)


def training_settings() -> dict:
    """Every setting of this run, as given: stored in each checkpoint to reproduce it."""
    return cli.script_settings(globals())


def save_epoch(model, criterion, optimizer, scheduler, speakers: list, n_bands: int,
               history: dict, run: dict) -> None:
    """Checkpoint of the epoch just finished (rank 0 only), written atomically. ``run``: its
    ``run_id`` marks the checkpoints of one run (a resumed run keeps its own), so that the
    lowest validation loss is never chosen across runs; ``started_from``, the init_from file
    it started from ('' for random weights), kept through every resume (resume state: a shipped
    model does not keep it, dvector.checkpoint.keep_best_only); the speech level of
    its training recordings, read once when the run starts."""
    if not dist.is_main_process():
        return
    epoch = history['epoch'][-1]
    state = {k: v.contiguous() for k, v in model.state_dict().items()}  # plain layout on disk
    save_checkpoint(log_dir, epoch, {
        'epoch': epoch + 1, 'state_dict': state, 'optimizer': optimizer.state_dict(),
        'scheduler': scheduler.state_dict(),
        'model_args': model_args(n_classes_for(speakers), n_bands),
        'loss_args': loss_args(), 'loss_state_dict': criterion.state_dict(),
        'speakers': speakers, 'feature_settings': feature_settings(),
        'win_size': win_size, 'speed_factors': list(parsed_speed_factors()),
        'whole_utterance': whole_utterance, LEVEL_KEY: run[LEVEL_KEY],
        'train_settings': training_settings(),
        'valid_loss': history['valid_loss'][-1],
        'valid_acc': history['valid_acc'][-1], 'history': history,
        'started_from': run['started_from'],
        **({'run_id': run['run_id']} if run['run_id'] else {})})


def new_run() -> dict:
    """The record save_epoch writes of a new run: its id, its training recordings' level (read
    once), and the real path of its init_from file, so that a resume from any folder finds the
    same file (resume state only: keep_best_only drops it, no path of this machine is shipped)."""
    return {'run_id': uuid.uuid4().hex, LEVEL_KEY: training_level_db(),
            'started_from': os.path.realpath(init_from) if init_from else ''}


def fit(device: torch.device) -> None:
    """The slides' main: data, model, loss, optimizer, the epochs, the lowest validation loss."""
    train_dataset, valid_dataset, n_classes = load_dataset(val_ratio)
    speakers, n_bands = train_dataset.speakers, train_dataset.n_bands
    log('\nNumber of classes (speakers):\n' + str(len(speakers)) + '\n')
    if n_classes > len(speakers):
        log(f'Speed perturbation: each speaker also at speeds {speed_factors}, as new classes '
            f'({n_classes} classes)\n')
    train_loader, valid_loader = make_loaders(train_dataset, valid_dataset, device)
    model = build_model_for(n_classes, n_bands, device)
    criterion = build_loss(embedding_size=embedding_size, n_classes=n_classes,
                           **loss_args()).to(device)
    with_loss = ModelWithLoss(model, criterion)
    optimizer = create_optimizer(with_loss)
    scheduler = create_scheduler(optimizer)
    first, history = start, {'epoch': [], 'train_loss': [], 'valid_loss': [], 'valid_acc': []}
    run = new_run()
    if resume:
        first, history, run = resume_state(model, criterion, optimizer, scheduler, speakers,
                                           n_bands, run[LEVEL_KEY])
        if dist.is_main_process():  # a killed run's unfinished file (this run holds the lock)
            remove_stale_temporaries(log_dir)
    else:
        if init_from:
            start_from_checkpoint(model, criterion, train_loader, speakers, n_bands, device)
        if dist.is_main_process():  # only now: a run that fails to start moves nothing
            set_aside_previous_run(log_dir)
    net = wrap_distributed(with_loss, device)
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp and device.type == 'cuda')
    for epoch in range(first, start + n_epochs):
        train_loss = train(train_loader, net, optimizer, scaler, epoch, device)
        valid_loss, valid_acc = validate(valid_loader, net, device, len(speakers), epoch)
        step_scheduler(scheduler, optimizer, valid_loss)
        for key, value in zip(history, (epoch, train_loss, valid_loss, valid_acc)):
            history[key].append(value)
        save_epoch(model, criterion, optimizer, scheduler, speakers, n_bands, history, run)
    if not history['epoch'] or history['epoch'][-1] < first:
        raise cli.SetupError(f'start={start}, n_epochs={n_epochs}: the last epoch, '
                             f'{start + n_epochs - 1}, is already trained; nothing to do')
    finish(history, device, valid_dataset)


def finish(history: dict, device: torch.device, valid_dataset: DvectorDataset) -> None:
    """The lowest validation loss, the loss plot, the whitening when asked, and the model's
    verification threshold (rank 0)."""
    best = history['epoch'][int(np.argmin(history['valid_loss']))]
    log(f'Lowest validation loss at epoch {best}')
    if not dist.is_main_process():
        return
    log(f'Loss plot: {visualize_the_losses(history, best)}')
    if whiten:
        whiten_checkpoint(log_dir, best, train_feat_dir, device, layer=whiten_layer)
    store_validation_threshold(best, valid_dataset, device)  # after whitening: on its scale
    log(f'Checkpoints in {log_dir}/; enroll.py with --log_dir {log_dir} uses the one of '
        f'epoch {best}')


def store_validation_threshold(best: int, valid_dataset: DvectorDataset,
                               device: torch.device) -> None:
    """Store in the best checkpoint the EER threshold of the pairs of the validation
    utterances (dvector/threshold.py): verification.py's default for this model, in place of
    the class's 0.95, until evaluate.py --store_threshold true measures one on other trials."""
    try:
        record = fit_validation_threshold(log_dir, best, valid_dataset.files,
                                          valid_dataset.labels, device)
    except cli.SetupError as err:  # e.g. a validation utterance too short to embed
        record, why = None, str(err)
    else:
        why = 'no two validation utterances of one speaker'
    if record is None:
        log(f"note: no threshold stored ({why}): verification.py uses the class's 0.95 until "
            f'python evaluate.py --log_dir {log_dir} --store_threshold true measures one')
        return
    log(f"Threshold {describe(record)} stored with epoch {best}: verification.py's default "
        'for this model')


def seed_everything(value: int) -> None:
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)


def main() -> None:
    cli.override_settings(globals(), doc=__doc__)
    check_choices()
    seed_everything(seed)
    device = dist.setup(use_cuda)
    log(f'Training on {device} ({dist.world_size()} process(es)); checkpoints and the loss '
        f'plot go to {log_dir}/')
    try:
        with writing(log_dir):
            fit(device)
        dist.wait_for_all()
    finally:
        dist.cleanup()


def writing(folder: str):
    """The lock of ``folder`` on rank 0 (the one that writes checkpoints), so that a second
    train.py into the same log_dir refuses with one line instead of mixing its checkpoints
    with this run's; a no-op on the other ranks."""
    if not dist.is_main_process():
        return contextlib.nullcontext()
    return folder_lock(folder, 'checkpoints', timeout=LOG_DIR_WAIT_S)


if __name__ == '__main__':
    cli.run(main)
