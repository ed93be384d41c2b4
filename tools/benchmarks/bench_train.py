"""Training and scoring speed: this project's data path vs the tutorial's, in the same run.

Prints, for one data set: training seconds per step, model-only seconds per step (same batch
shapes, tensors already in memory, same memory format), their ratio, samples/s, start-up
(loading) time, validation time, peak memory, scoring segments/s and GFLOP/s (against the
CPU's matrix-product GFLOP/s, the ceiling of any scoring speed-up); then the same figures
for the baseline: the tutorial's loader (one pickle opened per sample, contiguous tensors) and
its scoring (one 100-frame segment per forward pass).

    python tools/benchmarks/bench_train.py --feat_dir data/tutorial_db/feat_logfbank_nfilt40/train
"""
import copy
import os
import random
import resource
import sys
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
import configure as c  # noqa: E402
from DB_wav_reader import read_feats_structure  # noqa: E402
from dvector import cli  # noqa: E402
from dvector.embedding import embed_utterances, l2_norm  # noqa: E402
from model import build_model  # noqa: E402
from model.fuse import fold_batchnorm  # noqa: E402
from SR_Dataset import DvectorDataset, collate_fn_feat_padded, random_window, read_MFB, to_input  # noqa: E402

# ---- settings ---------------------------------------------------------------------------
feat_dir = c.TRAIN_FEAT_DIR          # training features to time
test_feat_dir = c.TEST_FEAT_DIR      # utterances to time scoring on
batch_size = 64
steps = 20                           # model-only steps timed (after 3 warm-up steps)
full_epoch = True                    # time a whole training epoch; False: `steps` steps only
which = 'both'                       # 'both', 'tutorial' or 'project': which data paths to time
threads = 0                          # torch threads; 0 = torch's default
# ------------------------------------------------------------------------------------------
SETTING_RULES = {  # the allowed values of each setting, checked before any work
    'feat_dir': cli.NAME, 'test_feat_dir': cli.NAME, 'batch_size': cli.at_least(2),
    'steps': cli.at_least(1), 'full_epoch': cli.FLAG,
    'which': cli.one_of('both', 'tutorial', 'project'), 'threads': cli.at_least(0)}


class PerFileDataset(Dataset):
    """The tutorial's loader: unpickle the file for every sample, then crop."""

    def __init__(self, files, labels):
        self.files, self.labels = files, labels

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        return to_input(random_window(read_MFB(self.files[i])[0])), self.labels[i]


def peak_memory_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_steps(model, batches, optimizer, memory_format, n_steps: int) -> tuple:
    """(mean seconds per step after 3 warm-up steps, total seconds) over ``n_steps`` steps."""
    criterion = torch.nn.CrossEntropyLoss()
    model.train()
    elapsed = []
    iterator = iter(batches)
    for _ in range(n_steps):
        t0 = time.perf_counter()
        x, y = next(iterator)
        x = x.contiguous(memory_format=memory_format)
        loss = criterion(model(x)[1], y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        elapsed.append(time.perf_counter() - t0)
    return float(np.mean(elapsed[3:] or elapsed)), float(np.sum(elapsed))


def forever(loader):
    while True:
        yield from loader


def same_batch_forever(x, y):
    while True:
        yield x, y


@torch.no_grad()
def time_validation(model, dataset, memory_format) -> float:
    model.eval()
    t0 = time.perf_counter()
    for x, _ in DataLoader(dataset, batch_size=16, collate_fn=collate_fn_feat_padded):
        model(x.contiguous(memory_format=memory_format))
    return time.perf_counter() - t0


@torch.no_grad()
def segments_per_second_loop(model, feats) -> tuple:
    """The tutorial's scoring: one forward pass per 100-frame segment."""
    model.eval()
    t0, n = time.perf_counter(), 0
    for feat in feats:
        total = 0
        for s in range(0, len(feat), 100):
            total = total + model(to_input(feat[s:s + 100])[None])[0]
            n += 1
        l2_norm(total)
    return n / (time.perf_counter() - t0), n


def segments_per_second_batched(model, feats) -> float:
    """This project's scoring: BatchNorm folded (as load_model does), batched pieces."""
    model = fold_batchnorm(copy.deepcopy(model)).to(memory_format=torch.channels_last)
    t0 = time.perf_counter()
    embed_utterances(model, feats, 100, torch.device('cpu'))
    n = sum(-(-len(f) // 100) for f in feats)
    return n / (time.perf_counter() - t0)


def gflop_per_segment(model) -> float:
    """Forward-pass GFLOP of one 100-frame segment (the compute that scoring cannot avoid)."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(torch.zeros(1, 1, 40, 100))
    return counter.get_total_flops() / 1e9


def matmul_gflops(size: int = 2048, repeats: int = 10) -> float:
    """The CPU's practical float32 peak: GFLOP/s of a large matrix product."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return repeats * 2 * size ** 3 / (time.perf_counter() - t0) / 1e9


def split(table, ratio: int = 10) -> tuple:
    """train.py's split: a random 10 % of the files for validation."""
    shuffled = table.sample(frac=1, random_state=1).reset_index(drop=True)
    n_valid = int(len(table) * ratio / 100)
    return shuffled.iloc[:len(table) - n_valid], shuffled.iloc[len(table) - n_valid:]


def measure(name: str, fast: bool, table, spk_to_idx, test_feats) -> dict:
    """All figures for one data path (fast = this project's, else the tutorial's)."""
    random.seed(0)
    torch.manual_seed(0)
    fmt = torch.channels_last if fast else torch.contiguous_format
    train_table, valid_table = split(table)
    files = list(train_table['filename'])
    t0 = time.perf_counter()
    if fast:
        train_set = DvectorDataset(files, train_table['speaker_id'], spk_to_idx)
    else:
        train_set = PerFileDataset(files, [spk_to_idx[s] for s in train_table['speaker_id']])
    startup = time.perf_counter() - t0
    model = build_model('resnet18', 128, len(spk_to_idx)).to(memory_format=fmt)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, drop_last=True)
    n_steps = len(loader) if full_epoch else min(steps + 3, len(loader))
    step, train_s = time_steps(model, forever(loader), optimizer, fmt, n_steps)
    x, y = next(iter(loader))
    model_only, _ = time_steps(model, same_batch_forever(x, y), optimizer, fmt, steps + 3)
    valid_set = DvectorDataset(valid_table['filename'], valid_table['speaker_id'], spk_to_idx,
                               train=False, in_memory=fast)
    valid = time_validation(model, valid_set, fmt)
    if fast:
        scoring = segments_per_second_batched(model, test_feats)
    else:
        scoring, _ = segments_per_second_loop(model, test_feats)
    return {'loader': name, 'startup_s': startup, 'step_s': step, 'model_step_s': model_only,
            'ratio': step / model_only, 'samples_per_s': batch_size / step,
            'train_steps': n_steps, 'train_s': train_s, 'valid_s': valid,
            'epoch_s': startup + train_s + valid if full_epoch else float('nan'),
            'scoring_seg_per_s': scoring,
            'scoring_gflop_s': scoring * gflop_per_segment(model), 'peak_mb': peak_memory_mb()}


def main() -> None:
    cli.override_settings(globals(), doc=__doc__)
    if threads:
        torch.set_num_threads(threads)
    table = read_feats_structure(feat_dir)
    spk_to_idx = {s: i for i, s in enumerate(sorted(table['speaker_id'].unique()))}
    test_feats = [read_MFB(f)[0] for f in read_feats_structure(test_feat_dir)['filename']]
    print(f'{len(table)} training files, {len(spk_to_idx)} speakers; {len(test_feats)} test '
          f'utterances; batch {batch_size}; torch {torch.__version__}, '
          f'{torch.get_num_threads()} threads')
    paths = [('tutorial (per-file pickle, contiguous, 1 segment/forward)', False),
             ('this project (in memory, channels_last, batched scoring)', True)]
    rows = [measure(name, fast, table, spk_to_idx, test_feats) for name, fast in paths
            if which == 'both' or (which == 'project') == fast]
    for row in rows:
        print(f"\n{row['loader']}")
        for key, value in row.items():
            if key != 'loader':
                print(f'  {key:18s} {value:10.3f}')
    if len(rows) == 2:
        base, ours = rows
        print(f"\nspeed-up: training step {base['step_s'] / ours['step_s']:.2f}x, epoch "
              f"{base['epoch_s'] / ours['epoch_s']:.2f}x, validation "
              f"{base['valid_s'] / ours['valid_s']:.2f}x, scoring "
              f"{ours['scoring_seg_per_s'] / base['scoring_seg_per_s']:.1f}x")
    print(f'scoring compute: {rows[-1]["scoring_gflop_s"]:.0f} GFLOP/s; this CPU multiplies '
          f'2048x2048 matrices at {matmul_gflops():.0f} GFLOP/s (its practical float32 peak)')


if __name__ == '__main__':
    cli.run(main)
