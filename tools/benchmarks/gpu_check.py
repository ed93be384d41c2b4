"""One prepared check of the CUDA paths and the GPU speed goals, for a machine with one GPU.

Eight steps; each reports on one line whatever happens to the others (a step that fails gives
its error in one line, and the next step runs):
  cuda_tests        pytest -m cuda: the tests that take a CUDA path when a GPU is present
  train_torchrun    torchrun --nproc_per_node=1 train.py, 1 epoch on a synthetic DB with
                    use_cuda=True; its checkpoint then loads on the CPU; and one all_reduce
                    through dvector.distributed (NCCL on CUDA, gloo on the CPU: with one process
                    train.py itself starts no process group)
  scripts           enroll.py, identification.py and verification.py on that model, use_cuda=True
  epoch_fp32        one training epoch of the tutorial DB's shape (21,600 utterances of 240
  epoch_bf16        speakers, synthetic features made on the device, kept in memory), the
                    tutorial's recipe (recipes/tutorial.py), data path included (DataLoader over
                    SR_Dataset.DvectorDataset); float32, then bf16 autocast
  scoring_pieces    utterances/s embedded as summed 100-frame pieces, batched (the tutorial's
                    embedding, dvector/embedding.py), through the scripts' inference model
  scoring_ecapa     utterances/s embedded whole through ECAPA-TDNN (model/ecapa.py)
  embeddings_equal  the scoring path on the device (BatchNorm folded, channels_last, batched)
                    against a CPU reference (unfolded, one piece per forward pass)
Goals (from the issue): an epoch in under 5 s, scoring over 5,000 utterances/s. A missed speed
goal is reported, not a failure; the exit status is 1 when a step failed (an error, a failing
test or script, embeddings that differ by more than max_difference).

    python tools/benchmarks/gpu_check.py --out runs/gpu/gpu_check.json     # on the GPU
    python tools/benchmarks/gpu_check.py --size small                     # a quick CPU run
    python tools/benchmarks/gpu_check.py --steps epoch_bf16,scoring_ecapa   # some steps only
"""
import ast
import copy
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

from dvector import cli  # noqa: E402
from dvector.checkpoint import (  # noqa: E402
    inference_model,
    model_from_checkpoint,
    read_checkpoint,
    select_device,
)
from dvector.embedding import embed_utterances, split_pieces  # noqa: E402
from dvector.fileio import atomic_path, check_writable_file, save_pickle  # noqa: E402
from model import build_model  # noqa: E402
from model.losses import ModelWithLoss, build_loss  # noqa: E402
from SR_Dataset import DvectorDataset  # noqa: E402

# ---- settings ---------------------------------------------------------------------------
size = 'full'                # 'full': the sizes (under 8 minutes on one H200);
                             # 'small': a check of this script on a CPU (well under a minute)
use_cuda = True              # use the GPU when there is one (else the CPU, and says so)
out = ''                     # also write the results as JSON to this file ('' = print only)
steps = []                   # the steps to run, comma-separated (empty = all eight)
cuda_tests = 'tests'         # where pytest -m cuda looks, comma-separated paths
work_dir = ''                # scratch folder (the synthetic DB, the training run); '' = a
                             # temporary folder, removed at the end
seed = 1                     # the synthetic data and the models' initial weights
goal_epoch_s = 5.0           # goal: one training epoch in under this many seconds
goal_utt_per_s = 5000.0      # goal: scoring faster than this many utterances a second
max_difference = 1e-4        # the device's embeddings must equal the CPU reference's to this
# ------------------------------------------------------------------------------------------
STEPS = ('cuda_tests', 'train_torchrun', 'scripts', 'epoch_fp32', 'epoch_bf16',
         'scoring_pieces', 'scoring_ecapa', 'embeddings_equal')
SETTING_RULES = {  # the allowed values of each setting, checked before any work
    'size': cli.one_of('full', 'small'), 'use_cuda': cli.FLAG, 'out': cli.TEXT,
    'steps': cli.Rule(lambda v: isinstance(v, list) and set(v) <= set(STEPS),
                      'comma-separated steps of ' + ', '.join(STEPS)),
    'cuda_tests': cli.NAME, 'work_dir': cli.TEXT, 'seed': cli.between(0, 2 ** 32 - 1),
    'goal_epoch_s': cli.above(0), 'goal_utt_per_s': cli.above(0),
    'max_difference': cli.above(0)}

# What each size runs. batch 0 = the recipe's (64); 'small' checks the script, not the speed.
SIZES = {
    'full': dict(epoch_utterances=21600, n_speakers=240, batch=0, warmup_steps=5,
                 score_utterances=8192, ecapa_utterances=2048, equal_utterances=64,
                 db_speakers=20, db_utts=20, db_batch=64, timeout_s=300),
    'small': dict(epoch_utterances=48, n_speakers=12, batch=16, warmup_steps=1,
                  score_utterances=32, ecapa_utterances=8, equal_utterances=6,
                  db_speakers=4, db_utts=6, db_batch=8, timeout_s=120)}
# Trimmed utterance lengths, in frames, drawn uniformly: the tutorial DB's training files
# after read_MFB's trim have 10-90 % 197-417 frames, mean 301 (2-5 s recordings).
FRAMES = (150, 450)
RECIPE = os.path.join(REPO, 'recipes', 'tutorial.py')
SCRIPT_DB = ('syn_t00', 'syn_t01')  # the test speakers of the synthetic DB (enroll, test)


class StepFailed(Exception):
    """A step's own failure, one line (the other steps still run)."""


def one_line(err: BaseException) -> str:
    text = ' '.join(str(err).split()) or type(err).__name__
    return text if isinstance(err, StepFailed) else f'{type(err).__name__}: {text}'


def recipe_values(path: str = RECIPE) -> dict:
    """The ``name = value`` lines of a recipe file (literals only)."""
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read(), path)
    return {target.id: ast.literal_eval(node.value) for node in tree.body
            if isinstance(node, ast.Assign) for target in node.targets}


def synthetic_utterances(n: int, n_speakers: int, device: torch.device) -> tuple:
    """``n`` utterances of (frames, 40) float32 features, round-robin over ``n_speakers``
    speakers (each a fixed spectral profile plus noise), made on ``device``; returned as the
    numpy arrays the Dataset crops, and their speaker numbers."""
    g = torch.Generator(device=device).manual_seed(seed)
    lengths = torch.randint(FRAMES[0], FRAMES[1] + 1, (n,), generator=g, device=device)
    labels = torch.arange(n, device=device) % n_speakers                  # (n,)
    profiles = 2 * torch.randn(n_speakers, 40, generator=g, device=device)  # (S, 40)
    owner = torch.repeat_interleave(labels, lengths)                      # (total frames,)
    frames = profiles[owner] + torch.randn(len(owner), 40, generator=g, device=device)
    ends = np.cumsum(lengths.cpu().numpy())[:-1]
    return np.split(frames.cpu().numpy(), ends), labels.cpu().tolist()     # n x (L, 40)


def run_script(args: list, timeout: int, label: str = '') -> subprocess.CompletedProcess:
    """A repository script or module as a user runs it; StepFailed naming it (``label``, or
    its first arguments) and its last error line."""
    label = label or ' '.join(args[:3])
    try:
        result = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True,
                                text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise StepFailed(f'{label}: still running after {timeout} s') from None
    if result.returncode != 0:
        lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
        raise StepFailed(f'{label}: exit {result.returncode}: '
                         + (lines[-1] if lines else 'no output'))
    return result


class Check:
    """What the steps share: the device, the sizes, the scratch folder, the synthetic DB."""

    def __init__(self, device: torch.device, work: str):
        self.device, self.work, self.sizes = device, work, SIZES[size]
        self.recipe = recipe_values()
        self.cpu = device.type != 'cuda'
        self.db_dirs = None

    def timeout(self) -> int:
        return self.sizes['timeout_s']

    def db(self) -> tuple:
        """(train_dir, test_dir) of the synthetic feature DB, written on first use."""
        if self.db_dirs is None:
            self.db_dirs = write_synthetic_db(os.path.join(self.work, 'db'),
                                              self.sizes['db_speakers'], self.sizes['db_utts'])
        return self.db_dirs

    def synchronize(self) -> None:
        if not self.cpu:
            torch.cuda.synchronize(self.device)


def write_synthetic_db(root: str, n_speakers: int, n_utts: int) -> tuple:
    """The tutorial DB's layout: <root>/train/syn_sNN/syn_sNN_uNN.p (``n_speakers`` speakers)
    and <root>/test/syn_tNN/{enroll,test}.p (3 other speakers, their utterances joined);
    returns (train_dir, test_dir)."""
    feats, labels = synthetic_utterances((n_speakers + 3) * n_utts, n_speakers + 3,
                                         torch.device('cpu'))
    train_dir, test_dir = os.path.join(root, 'train'), os.path.join(root, 'test')
    by_speaker = {}
    for feat, label in zip(feats, labels):
        by_speaker.setdefault(label, []).append(feat)
    for label, utterances in by_speaker.items():
        if label < n_speakers:
            spk = f'syn_s{label:02d}'
            for u, feat in enumerate(utterances):
                save_pickle({'feat': feat, 'label': spk},
                            os.path.join(train_dir, spk, f'{spk}_u{u:02d}.p'))
            continue
        spk, half = f'syn_t{label - n_speakers:02d}', len(utterances) // 2
        for name, part in (('enroll', utterances[:half]), ('test', utterances[half:])):
            save_pickle({'feat': np.concatenate(part), 'label': spk},
                        os.path.join(test_dir, spk, name + '.p'))
    return train_dir, test_dir


def step_cuda_tests(check: Check) -> dict:
    """pytest -m cuda over ``cuda_tests``: every test passes, and there is at least one."""
    paths = [p for p in cuda_tests.split(',') if p]
    command = [sys.executable, '-m', 'pytest', '-q', '-m', 'cuda', '-p', 'no:cacheprovider',
               '--continue-on-collection-errors', *paths]  # one broken file stops no test
    try:
        result = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                                timeout=max(check.timeout(), 240))
    except subprocess.TimeoutExpired:
        raise StepFailed(f'pytest -m cuda: still running after {max(check.timeout(), 240)} s') \
            from None
    summary = (result.stdout.strip().splitlines() or ['no output'])[-1].strip('= ')
    passed = re.search(r'(\d+) passed', summary)
    if result.returncode != 0 or not passed:
        raise StepFailed(f'pytest -m cuda {" ".join(paths)}: exit {result.returncode}: {summary}')
    where = 'CPU: their CUDA branches were not taken' if check.cpu else 'on CUDA'
    return dict(value=int(passed[1]), shown=f'{passed[1]} passed', check=True,
                note=f'{summary} ({where})')


# One all_reduce in a one-process group, run in a child process: NCCL's watchdog aborts the
# whole process when a collective hangs, and that must not take the other steps' results along.
COLLECTIVE = """
import datetime, sys, torch
from dvector import distributed as dist
backend, store = sys.argv[1], sys.argv[2]
device = torch.device('cuda', 0) if backend == 'nccl' else torch.device('cpu')
torch.distributed.init_process_group(backend, init_method=store, rank=0, world_size=1,
                                     timeout=datetime.timedelta(seconds=60))
print(dist.sum_across_ranks([1.0, 2.5], device))
dist.cleanup()
"""


def collective_check(check: Check) -> str:
    """One all_reduce through dvector.distributed.sum_across_ranks: NCCL on CUDA, gloo on the
    CPU; returns the backend."""
    backend = 'gloo' if check.cpu else 'nccl'
    store = 'file://' + os.path.join(check.work, 'process_group_store')
    result = run_script(['-c', COLLECTIVE, backend, store], check.timeout(),
                        f'the all_reduce on {backend}')
    total = (result.stdout.strip().splitlines() or ['nothing'])[-1]
    if total != '[1.0, 2.5]':
        raise StepFailed(f'all_reduce on {backend} gave {total}, not [1.0, 2.5]')
    return backend


def step_train_torchrun(check: Check) -> dict:
    """torchrun --nproc_per_node=1 train.py for 1 epoch (use_cuda=True); the checkpoint loads
    and embeds on the CPU; then one all_reduce on the device's backend."""
    train_dir, test_dir = check.db()
    log_dir = os.path.join(check.work, 'log')
    t0 = time.perf_counter()
    result = run_script(['-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=1',
                         'train.py', '--train_feat_dir', train_dir, '--n_epochs', '1',
                         '--log_dir', log_dir, '--batch_size', str(check.sizes['db_batch']),
                         '--val_ratio', '25', '--use_cuda', 'true'], check.timeout())
    wall = time.perf_counter() - t0
    found = re.search(r'Training on (\S+) \((\d+) process', result.stdout)
    trained_on = found[1] if found else 'an unnamed device'
    if not check.cpu and not trained_on.startswith('cuda'):
        raise StepFailed(f'train.py with use_cuda=True trained on {trained_on}, not on CUDA')
    checkpoint = read_checkpoint(log_dir)
    model = inference_model(checkpoint, torch.device('cpu'))
    feats, _ = synthetic_utterances(4, 2, torch.device('cpu'))
    embeddings = embed_utterances(model, feats, 100, torch.device('cpu'))  # (4, E)
    if not torch.isfinite(embeddings).all():
        raise StepFailed(f'{checkpoint["path"]}: its embeddings on the CPU are not finite')
    backend = collective_check(check)
    return dict(value=wall, shown=f'{wall:.1f} s', check=True,
                note=f'trained on {trained_on}; {os.path.basename(checkpoint["path"])} loads and '
                     f'embeds on the CPU; all_reduce through dvector.distributed on {backend}')


def step_scripts(check: Check) -> dict:
    """enroll.py, identification.py and verification.py on the torchrun step's model."""
    log_dir, (_, test_dir) = os.path.join(check.work, 'log'), check.db()
    if not os.path.isdir(log_dir):
        raise StepFailed('no trained model: the train_torchrun step did not run or failed')
    common = ['--log_dir', log_dir, '--test_dir', test_dir, '--use_cuda', 'true',
              '--embedding_dir', os.path.join(check.work, 'enrolled')]
    enrolled, claimed = SCRIPT_DB
    runs = (('enroll.py', [], 'Save the embeddings for ' + claimed),
            ('identification.py', ['--test_speaker', claimed], 'Predicted speaker : syn_t'),
            ('verification.py', ['--enroll_speaker', enrolled, '--test_speaker', claimed,
                                 '--thres', '0.5'], 'Result : '))
    t0 = time.perf_counter()
    for script, extra, expected in runs:
        result = run_script([script, *common, *extra], check.timeout())
        if expected not in result.stdout:
            raise StepFailed(f'{script}: its output lacks {expected!r}')
    wall = time.perf_counter() - t0
    return dict(value=wall, shown=f'{wall:.1f} s', check=True,
                note='enroll.py, identification.py, verification.py ran with use_cuda=True')


def training_set(check: Check) -> DvectorDataset:
    """The project's Dataset over synthetic utterances of the tutorial DB's shape, features
    already in memory (what in_memory=True holds once it has read the files)."""
    feats, labels = synthetic_utterances(check.sizes['epoch_utterances'],
                                         check.sizes['n_speakers'], check.device)
    speakers = [f'spk{label:03d}' for label in labels]
    names = [f'synthetic/{spk}/{i:05d}.p' for i, spk in enumerate(speakers)]
    spk_to_idx = {spk: i for i, spk in enumerate(sorted(set(speakers)))}
    dataset = DvectorDataset(names, speakers, spk_to_idx, win_size=check.recipe['win_size'],
                             in_memory=False)
    dataset.feats = feats
    return dataset


def tutorial_training(check: Check, n_classes: int) -> tuple:
    """The tutorial recipe's model (with its loss) and SGD optimizer, as train.py builds them:
    on the device, channels_last."""
    recipe = check.recipe
    torch.manual_seed(seed)
    model = build_model(recipe['backbone'], recipe['embedding_size'], n_classes,
                        pooling=recipe['pooling'], stem_stride=recipe['stem_stride'])
    model = model.to(check.device).to(memory_format=torch.channels_last)
    loss = build_loss(recipe['loss_type'], recipe['embedding_size'], n_classes)
    net = ModelWithLoss(model, loss.to(check.device))
    optimizer = torch.optim.SGD(net.parameters(), lr=recipe['lr'], momentum=0.9,
                                weight_decay=recipe['wd'])
    return net, optimizer


def train_steps(check: Check, net: nn.Module, optimizer, batches, bf16: bool) -> tuple:
    """train.py's step over ``batches`` (to the device, channels_last, autocast, loss.item()
    each step); returns (steps, seconds, seconds spent waiting for the DataLoader)."""
    scaler = torch.amp.GradScaler(check.device.type, enabled=bf16 and not check.cpu)
    net.train()
    n, waited, t0 = 0, 0.0, time.perf_counter()
    iterator = iter(batches)
    while True:
        t_wait = time.perf_counter()
        batch = next(iterator, None)
        waited += time.perf_counter() - t_wait
        if batch is None:
            break
        inputs = batch[0].to(check.device, non_blocking=True)        # (B, 1, 40, 100)
        inputs = inputs.contiguous(memory_format=torch.channels_last)
        targets = batch[1].to(check.device, non_blocking=True)       # (B,)
        with torch.autocast(check.device.type, dtype=torch.bfloat16, enabled=bf16):
            loss, _ = net(inputs, targets)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        loss.item()
        n += 1
    check.synchronize()
    return n, time.perf_counter() - t0, waited


def time_epoch(check: Check, dataset: DvectorDataset, bf16: bool) -> dict:
    """One shuffled epoch after a few warm-up steps; the goal: under goal_epoch_s."""
    batch = check.sizes['batch'] or check.recipe['batch_size']
    random.seed(seed)
    net, optimizer = tutorial_training(check, dataset.n_speakers)
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, pin_memory=not check.cpu,
                        drop_last=len(dataset) % batch == 1)  # as train.py: BatchNorm needs 2
    warm = iter(loader)
    train_steps(check, net, optimizer,
                (next(warm) for _ in range(check.sizes['warmup_steps'])), bf16)
    n, seconds, waited = train_steps(check, net, optimizer, loader, bf16)
    full = SIZES['full']['epoch_utterances']
    projected = seconds * full / len(dataset)  # the goal is for the full epoch
    scaled = '' if len(dataset) == full else \
        f'; {seconds:.2f} s for {len(dataset)}, scaled to {full:,} utterances'
    return dict(value=projected, shown=f'{projected:.2f} s', goal=('below', goal_epoch_s),
                measured_s=seconds, utterances=len(dataset), steps=n, batch=batch,
                note=f'{"bf16 autocast" if bf16 else "float32"}, {dataset.n_speakers} speakers, '
                     f'{n} steps of {batch}: {seconds / n * 1000:.1f} ms/step, '
                     f'{waited / seconds:.0%} of it waiting for the DataLoader{scaled}')


def step_epochs(check: Check, cache: dict, bf16: bool) -> dict:
    if 'dataset' not in cache:  # made once for both precisions
        cache['dataset'] = training_set(check)
    return time_epoch(check, cache['dataset'], bf16)


def fresh_checkpoint(backbone: str, pooling: str, n_classes: int, whole: bool) -> dict:
    """What read_checkpoint gives for a newly initialised model, BatchNorm statistics drawn at
    random (so that folding them into the convolutions changes the weights)."""
    torch.manual_seed(seed)
    model = build_model(backbone, 128, n_classes, pooling=pooling)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.normal_(0, 0.2)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.normal_(0, 0.1)
    return {'model_args': {'backbone': backbone, 'embedding_size': 128, 'n_classes': n_classes,
                           'pooling': pooling, 'n_bands': 40},
            'state_dict': model.state_dict(), 'whole_utterance': whole,
            'path': f'a new {backbone}'}


def time_scoring(check: Check, checkpoint: dict, n: int, test_frames: int) -> dict:
    """Utterances/s through embed_utterances with the scripts' inference model; the second
    pass is timed (the first warms up kernels and memory); the goal: over goal_utt_per_s."""
    feats, _ = synthetic_utterances(n, 10, check.device)
    model = inference_model(checkpoint, check.device)
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        embed_utterances(model, feats, test_frames, check.device)  # (n, E), on the CPU
        times.append(time.perf_counter() - t0)
    pieces = sum(len(split_pieces(f, 0 if checkpoint['whole_utterance'] else test_frames))
                 for f in feats)
    what = 'whole' if checkpoint['whole_utterance'] else f'as {pieces} pieces of {test_frames}'
    return dict(value=n / times[1], shown=f'{n / times[1]:,.0f} utt/s',
                goal=('above', goal_utt_per_s),
                note=f'{n} utterances of {FRAMES[0]}-{FRAMES[1]} frames {what}: '
                     f'{pieces / times[1]:,.0f} pieces/s; first pass {n / times[0]:,.0f} utt/s')


def step_scoring_pieces(check: Check) -> dict:
    checkpoint = fresh_checkpoint(check.recipe['backbone'], check.recipe['pooling'], 240, False)
    return time_scoring(check, checkpoint, check.sizes['score_utterances'], 100)


def step_scoring_ecapa(check: Check) -> dict:
    checkpoint = fresh_checkpoint('ecapa', 'stats', 240, True)
    return time_scoring(check, checkpoint, check.sizes['ecapa_utterances'], 0)


def step_embeddings_equal(check: Check) -> dict:
    """The scoring path on the device against the CPU reference: the model unfolded,
    contiguous, one 100-frame piece per forward pass (the tutorial's loop)."""
    checkpoint = fresh_checkpoint(check.recipe['backbone'], check.recipe['pooling'], 240, False)
    feats, _ = synthetic_utterances(check.sizes['equal_utterances'], 3, torch.device('cpu'))
    cpu = torch.device('cpu')
    reference = embed_utterances(model_from_checkpoint(copy.deepcopy(checkpoint), cpu), feats,
                                 100, cpu, batch_size=1)                  # (n, E)
    ours = embed_utterances(inference_model(checkpoint, check.device), feats, 100,
                            check.device)                                 # (n, E)
    difference = float((reference - ours).abs().max())
    against = 'CPU against CPU (no CUDA device)' if check.cpu else \
        f'{check.device} (cuDNN TF32 {"on" if torch.backends.cudnn.allow_tf32 else "off"}) ' \
        'against CPU'
    return dict(value=difference, shown=f'{difference:.1e}',
                check=difference < max_difference,
                note=f'{against}: {len(feats)} utterances, max abs difference of the '
                     f'normalised embeddings; must be < {max_difference:g}')


def step_functions(check: Check) -> dict:
    cache = {}
    return {'cuda_tests': step_cuda_tests, 'train_torchrun': step_train_torchrun,
            'scripts': step_scripts,
            'epoch_fp32': lambda c: step_epochs(c, cache, bf16=False),
            'epoch_bf16': lambda c: step_epochs(c, cache, bf16=True),
            'scoring_pieces': step_scoring_pieces, 'scoring_ecapa': step_scoring_ecapa,
            'embeddings_equal': step_embeddings_equal}


def verdict(result: dict) -> str:
    """'ok' / 'FAILED' for a check; 'goal met' / 'goal missed' for a speed goal."""
    if result['status'] == 'failed':
        return 'FAILED'
    if 'goal' in result:
        kind, bound = result['goal']
        met = result['value'] < bound if kind == 'below' else result['value'] > bound
        result['goal_met'] = met
        return 'goal met' if met else 'goal missed'
    return 'ok' if result.get('check') else 'FAILED'


def run_step(name: str, function: Callable[[Check], dict], check: Check) -> dict:
    """Run one step; any failure becomes its one-line result (the next step still runs)."""
    t0 = time.perf_counter()
    try:
        result = dict(function(check), status='ok')
    except Exception as err:  # noqa: BLE001  each step reports its own failure
        result = dict(value=None, shown='-', note=one_line(err), status='failed')
    result['seconds'] = time.perf_counter() - t0
    result['verdict'] = verdict(result)
    if result['verdict'] == 'FAILED':
        result['status'] = 'failed'
    print(f'  {name:16s} {result["verdict"]:11s} {result["shown"]} ({result["seconds"]:.1f} s)',
          file=sys.stderr, flush=True)
    return result


def machine(device: torch.device) -> str:
    if device.type == 'cuda':
        return f'{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})'
    return f'CPU: {platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads'


def goal_text(result: dict) -> str:
    if 'goal' not in result:
        return 'must pass'
    kind, bound = result['goal']
    return f'{"<" if kind == "below" else ">"} {bound:,g}'


def print_table(report: dict) -> None:
    print(f'\nGPU check, size {report["size"]}, on {report["machine"]}, torch '
          f'{report["torch"]}')
    if report['cpu_figures']:
        print('CPU FIGURES: no CUDA device was used. The goals are a GPU\'s; the speed '
              'verdicts below say nothing about one.')
    if report['size'] == 'small':
        print('size small: a check of this script, not the issue\'s sizes (see SIZES)')
    print(f'\n{"step":16s} {"result":>14s}  {"goal":>10s}  {"verdict":11s} note')
    for name, result in report['steps'].items():
        print(f'{name:16s} {result["shown"]:>14s}  {goal_text(result):>10s}  '
              f'{result["verdict"]:11s} {result["note"]}')
    failed = report['failed']
    print(f'\n{len(failed)} of {len(report["steps"])} steps failed' +
          (': ' + ', '.join(failed) if failed else ''))


def write_json(report: dict, path: str) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, 'w', encoding='utf-8') as f:
            json.dump(report, f, indent=1)
    print(f'results: {path}')


def run_all(device: torch.device, work: str) -> dict:
    check = Check(device, work)
    functions = step_functions(check)
    chosen = [name for name in STEPS if not steps or name in steps]
    print(f'gpu_check on {machine(device)}: {", ".join(chosen)}', file=sys.stderr)
    results = {name: run_step(name, functions[name], check) for name in chosen}
    return {'machine': machine(device), 'device': str(device), 'cpu_figures': check.cpu,
            'torch': torch.__version__, 'size': size, 'settings': cli.script_settings(globals()),
            'tf32': {'cudnn': torch.backends.cudnn.allow_tf32,
                     'matmul': torch.backends.cuda.matmul.allow_tf32},
            'steps': results, 'failed': [n for n, r in results.items() if r['status'] == 'failed']}


def main() -> None:
    cli.override_settings(globals(), doc=__doc__)
    if out:
        check_writable_file(out, 'out')
    device = select_device(use_cuda)
    if work_dir:
        work = os.path.join(work_dir, 'gpu_check')
        os.makedirs(work, exist_ok=True)
    else:
        work = tempfile.mkdtemp(prefix='gpu_check_')
    try:
        report = run_all(device, work)
    finally:
        if not work_dir:  # the temporary folder this run made, and only that
            shutil.rmtree(work, ignore_errors=True)
    print_table(report)
    if out:
        write_json(report, out)
    if report['failed']:
        sys.exit(1)


if __name__ == '__main__':
    cli.run(main)
