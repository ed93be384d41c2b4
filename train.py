"""Train the d-vector model: a ResNet speaker classifier whose last hidden layer is the embedding.

Edit the settings below, or give any of them on the command line by the same name:
    python train.py --n_epochs 2 --train_feat_dir /data/feat_logfbank_nfilt40/train
"""
import math
import os
import random
import time

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader

import cli
import configure as c
from checkpoint import list_checkpoints, read_checkpoint, save_checkpoint, select_device
from DB_wav_reader import read_feats_structure
from features import feature_settings
from model import build_model
from SR_Dataset import DvectorDataset, collate_fn_feat_padded

# ---- settings ---------------------------------------------------------------------------
use_cuda = True                      # train on the GPU when there is one (else the CPU)
train_feat_dir = c.TRAIN_FEAT_DIR    # <dir>/<speaker>/<utterance>.p
val_ratio = 10                       # percent of the files held out for validation
embedding_size = 128                 # size of the d-vector (the fc0 layer)
backbone = 'resnet18'                # resnet18, resnet34, resnet50, resnet101, resnet152
start = 1                            # number of the first epoch
n_epochs = 30                        # number of the last epoch
lr = 1e-1                            # initial learning rate
wd = 1e-4                            # weight decay
optimizer_type = 'sgd'               # 'sgd' (momentum 0.9), 'adam' or 'adagrad'
batch_size = 64                      # training crops per batch
valid_batch_size = 16                # whole utterances per validation batch
use_shuffle = True                   # shuffle the training set every epoch
log_dir = 'model_saved'              # where checkpoints and loss_plot.png are written
log_interval = 84                    # print a progress line every this many batches
seed = 1                             # random seed: the same split and crops every run
resume = False                       # continue from the last checkpoint in log_dir
# ------------------------------------------------------------------------------------------


class AverageMeter:
    """Keeps the latest value and the running average."""

    def __init__(self):
        self.val, self.sum, self.count, self.avg = 0.0, 0.0, 0, 0.0

    def update(self, val: float, n: int = 1) -> None:
        self.val, self.sum, self.count = val, self.sum + val * n, self.count + n
        self.avg = self.sum / self.count


def seed_everything(value: int) -> None:
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)


def split_train_dev(feat_dir: str, ratio: int) -> tuple:
    """Random split of the feature files into training and validation tables."""
    table = read_feats_structure(feat_dir)
    total = len(table)
    valid_len = int(total * ratio / 100.0)
    if not 0 < valid_len < total:
        raise cli.SetupError(f'val_ratio={ratio}: gives {valid_len} of {total} files to '
                             'validation; need at least one file on each side')
    shuffled = table.sample(frac=1, random_state=seed).reset_index(drop=True)
    train_table, valid_table = shuffled.iloc[:total - valid_len], shuffled.iloc[total - valid_len:]
    print(f'\nTraining set {len(train_table)} utts ({len(train_table) / total * 100:0.1f}%)')
    print(f'Validation set {valid_len} utts ({valid_len / total * 100:0.1f}%)')
    print(f'Total {total} utts')
    return train_table, valid_table, sorted(table['speaker_id'].unique())


def make_loaders(train_table, valid_table, spk_to_idx: dict) -> tuple:
    train_set = DvectorDataset(train_table['filename'], train_table['speaker_id'], spk_to_idx)
    valid_set = DvectorDataset(valid_table['filename'], valid_table['speaker_id'], spk_to_idx,
                               train=False)
    short = train_set.short_utterances()
    if short:
        print(f'warning: {len(short)} training utterances are shorter than {c.NUM_WIN_SIZE} '
              f'frames after the trim and are tiled to fill the window (first: {short[0]})')
    train_loader = DataLoader(train_set, batch_size=batch_size, shuffle=use_shuffle)
    valid_loader = DataLoader(valid_set, batch_size=valid_batch_size, shuffle=False,
                              collate_fn=collate_fn_feat_padded)
    return train_loader, valid_loader


def create_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    if optimizer_type == 'sgd':
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, dampening=0,
                               weight_decay=wd)
    if optimizer_type == 'adam':
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=wd)
    if optimizer_type == 'adagrad':
        return torch.optim.Adagrad(model.parameters(), lr=lr, weight_decay=wd)
    raise cli.SetupError(f"optimizer_type={optimizer_type!r}: use 'sgd', 'adam' or 'adagrad'")


def train_one_epoch(model, loader, criterion, optimizer, epoch: int, device) -> tuple:
    """One pass over the training crops; returns (mean loss, accuracy %)."""
    model.train()
    batch_time, losses, train_acc = AverageMeter(), AverageMeter(), AverageMeter()
    end = time.time()
    for batch_idx, (inputs, targets) in enumerate(loader):
        inputs, targets = inputs.to(device), targets.to(device)  # (B, 1, 40, 100), (B,)
        _, logits = model(inputs)                                 # (B, n_classes)
        loss = criterion(logits, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        n = targets.size(0)
        losses.update(loss.item(), n)
        train_acc.update((logits.argmax(1) == targets).float().mean().item() * 100, n)
        batch_time.update(time.time() - end)
        end = time.time()
        if batch_idx % log_interval == 0:
            print(f'Train Epoch: {epoch:3d} [{batch_idx * batch_size:8d}/{len(loader.dataset):8d} '
                  f'({100.0 * batch_idx / len(loader):3.0f}%)]\t'
                  f'Time {batch_time.val:.3f} ({batch_time.avg:.3f})\t'
                  f'Loss {losses.avg:.4f}\tAcc {train_acc.avg:.4f}')
    return losses.avg, train_acc.avg


@torch.no_grad()
def validate(model, loader, criterion, device) -> tuple:
    """Loss and accuracy (%) on whole validation utterances."""
    model.eval()
    losses, valid_acc = AverageMeter(), AverageMeter()
    for inputs, targets in loader:
        inputs, targets = inputs.to(device), targets.to(device)  # (B, 1, 40, T_max)
        _, logits = model(inputs)
        losses.update(criterion(logits, targets).item(), targets.size(0))
        valid_acc.update((logits.argmax(1) == targets).float().mean().item() * 100,
                         targets.size(0))
    print(f'  * Validation: Loss {losses.avg:.4f}\tAcc {valid_acc.avg:.4f}')
    return losses.avg, valid_acc.avg


def plot_losses(history: dict, best: int, path: str) -> None:
    """Training and validation loss per epoch, the lowest validation loss marked."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from fileio import atomic_path
    epochs = history['epoch']
    fig = plt.figure(figsize=(10, 8))
    plt.plot(epochs, history['train_loss'], label='Training Loss')
    plt.plot(epochs, history['valid_loss'], label='Validation Loss')
    plt.axvline(best, linestyle='--', color='r', label='Early Stopping Checkpoint')
    plt.xlabel('epochs')
    plt.ylabel('loss')
    top = max(history['train_loss'] + history['valid_loss'])
    plt.ylim(0, max(3.5, math.ceil(top * 2) / 2 if math.isfinite(top) else 3.5))
    plt.xlim(0, max(epochs) + 1)
    plt.grid(True)
    plt.legend()
    plt.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format='png', bbox_inches='tight')
    plt.close(fig)


def resume_state(model, optimizer, scheduler, speakers: list) -> tuple:
    """Load the last checkpoint of log_dir into the model and optimizer; (next epoch, history)."""
    checkpoints = list_checkpoints(log_dir)
    if not checkpoints:
        raise cli.SetupError(f'resume: no checkpoint in {log_dir} to resume from')
    last = max(checkpoints)
    checkpoint = read_checkpoint(log_dir, last)
    if checkpoint['model_args'] != model_args(len(speakers)) or checkpoint['speakers'] != speakers:
        raise cli.SetupError(f'resume: {checkpoints[last]} was trained with '
                             f'{checkpoint["model_args"]} on other speakers or settings; '
                             f'now {model_args(len(speakers))}')
    if 'optimizer' not in checkpoint:
        raise cli.SetupError(f'resume: {checkpoints[last]} has no optimizer state')
    model.load_state_dict(checkpoint['state_dict'])
    optimizer.load_state_dict(checkpoint['optimizer'])
    scheduler.load_state_dict(checkpoint['scheduler'])
    print(f'=> resuming from {checkpoints[last]} at epoch {checkpoint["epoch"]}')
    return checkpoint['epoch'], checkpoint['history']


def model_args(n_classes: int) -> dict:
    return {'backbone': backbone, 'embedding_size': embedding_size, 'n_classes': n_classes}


def main() -> None:
    cli.override_settings(globals(), doc=__doc__)
    seed_everything(seed)
    device = select_device(use_cuda)
    train_table, valid_table, speakers = split_train_dev(train_feat_dir, val_ratio)
    print('\nNumber of classes (speakers):\n' + str(len(speakers)) + '\n')
    spk_to_idx = {s: i for i, s in enumerate(speakers)}
    train_loader, valid_loader = make_loaders(train_table, valid_table, spk_to_idx)
    model = build_model(**model_args(len(speakers))).to(device)
    optimizer = create_optimizer(model)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, 'min', patience=2, min_lr=1e-4, factor=0.1)
    criterion = nn.CrossEntropyLoss()
    first, history = start, {'epoch': [], 'train_loss': [], 'valid_loss': [], 'valid_acc': []}
    if resume:
        first, history = resume_state(model, optimizer, scheduler, speakers)
    for epoch in range(first, n_epochs + 1):
        train_loss, _ = train_one_epoch(model, train_loader, criterion, optimizer, epoch, device)
        valid_loss, valid_acc = validate(model, valid_loader, criterion, device)
        scheduler.step(valid_loss)
        for key, value in zip(history, (epoch, train_loss, valid_loss, valid_acc)):
            history[key].append(value)
        save_checkpoint(log_dir, epoch, {
            'epoch': epoch + 1, 'state_dict': model.state_dict(),
            'optimizer': optimizer.state_dict(), 'scheduler': scheduler.state_dict(),
            'model_args': model_args(len(speakers)), 'speakers': speakers,
            'feature_settings': feature_settings(), 'win_size': c.NUM_WIN_SIZE,
            'valid_loss': valid_loss, 'valid_acc': valid_acc, 'history': history})
    if not history['epoch']:
        raise cli.SetupError(f'start={first} is after n_epochs={n_epochs}: nothing to train')
    best = history['epoch'][int(np.argmin(history['valid_loss']))]
    print(f'Lowest validation loss at epoch {best}')
    plot_losses(history, best, os.path.join(log_dir, 'loss_plot.png'))


if __name__ == '__main__':
    cli.run(main)
