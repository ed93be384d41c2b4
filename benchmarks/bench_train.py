"""Training and scoring speed: this project's data path vs the tutorial's, in the same run.

Prints, for one data set: training seconds per step, model-only seconds per step (same batch
shapes, tensors already in memory, same memory format), their ratio, samples/s, start-up
(loading) time, validation time, peak memory, and scoring segments/s; then the same figures
for the baseline: the tutorial's loader (one pickle opened per sample, contiguous tensors) and
its scoring (one 100-frame segment per forward pass).

    python benchmarks/bench_train.py --feat_dir ../shared/tutorial_db/feat_logfbank_nfilt40/train
"""
import os
import random
import resource
import sys
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import cli  # noqa: E402
import configure as c  # noqa: E402
from DB_wav_reader import read_feats_structure  # noqa: E402
from embedding import embed_utterances, l2_norm  # noqa: E402
from model import build_model  # noqa: E402
from SR_Dataset import (DvectorDataset, collate_fn_feat_padded, random_window, read_MFB,  # noqa: E402
                        to_input)

# ---- settings ---------------------------------------------------------------------------
feat_dir = c.TRAIN_FEAT_DIR          # training features to time
test_feat_dir = c.TEST_FEAT_DIR      # utterances to time scoring on
batch_size = 64
steps = 20                           # timed training steps (after 3 warm-up steps)
valid_files = 288                    # whole utterances in the timed validation pass
threads = 0                          # torch threads; 0 = torch's default
# ------------------------------------------------------------------------------------------


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


def time_steps(model, batches, optimizer, memory_format) -> float:
    """Mean seconds per training step over ``steps`` steps drawn from ``batches``."""
    criterion = torch.nn.CrossEntropyLoss()
    model.train()
    elapsed = []
    iterator = iter(batches)
    for i in range(steps + 3):
        t0 = time.perf_counter()
        x, y = next(iterator)
        x = x.contiguous(memory_format=memory_format)
        loss = criterion(model(x)[1], y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if i >= 3:
            elapsed.append(time.perf_counter() - t0)
    return float(np.mean(elapsed))


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
    t0 = time.perf_counter()
    embed_utterances(model, feats, 100, torch.device('cpu'))
    n = sum(-(-len(f) // 100) for f in feats)
    return n / (time.perf_counter() - t0)


def measure(name: str, fast: bool, table, spk_to_idx, test_feats) -> dict:
    """All figures for one data path (fast = this project's, else the tutorial's)."""
    random.seed(0)
    torch.manual_seed(0)
    fmt = torch.channels_last if fast else torch.contiguous_format
    files, labels = list(table['filename']), [spk_to_idx[s] for s in table['speaker_id']]
    t0 = time.perf_counter()
    if fast:
        train_set = DvectorDataset(files, table['speaker_id'], spk_to_idx)
    else:
        train_set = PerFileDataset(files, labels)
    startup = time.perf_counter() - t0
    model = build_model('resnet18', 128, len(spk_to_idx)).to(memory_format=fmt)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, drop_last=True)
    step = time_steps(model, forever(loader), optimizer, fmt)
    x, y = next(iter(loader))
    model_only = time_steps(model, same_batch_forever(x, y), optimizer, fmt)
    valid_set = DvectorDataset(files[:valid_files], table['speaker_id'][:valid_files],
                               spk_to_idx, train=False, in_memory=fast)
    valid = time_validation(model, valid_set, fmt)
    if fast:
        scoring = segments_per_second_batched(model, test_feats)
    else:
        scoring, _ = segments_per_second_loop(model, test_feats)
    return {'loader': name, 'startup_s': startup, 'step_s': step, 'model_step_s': model_only,
            'ratio': step / model_only, 'samples_per_s': batch_size / step,
            'valid_s': valid, 'scoring_seg_per_s': scoring, 'peak_mb': peak_memory_mb()}


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
    rows = [measure('tutorial (per-file pickle, contiguous, 1 segment/forward)', False, table,
                    spk_to_idx, test_feats),
            measure('this project (in memory, channels_last, batched scoring)', True, table,
                    spk_to_idx, test_feats)]
    for row in rows:
        print(f"\n{row['loader']}")
        for key, value in row.items():
            if key != 'loader':
                print(f'  {key:18s} {value:10.3f}')
    base, ours = rows
    print(f"\nspeed-up: training step {base['step_s'] / ours['step_s']:.2f}x, validation "
          f"{base['valid_s'] / ours['valid_s']:.2f}x, scoring "
          f"{ours['scoring_seg_per_s'] / base['scoring_seg_per_s']:.1f}x")


if __name__ == '__main__':
    cli.run(main)
