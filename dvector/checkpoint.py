"""Saving and loading checkpoints that carry everything needed to rebuild the model.

A checkpoint is a dict of tensors and plain values (loadable with ``weights_only=True``):
``state_dict``, ``model_args`` (backbone, embedding_size, n_classes, pooling, n_bands, and
stem_stride for a resnet), ``loss_args`` and ``loss_state_dict`` (the training loss; a margin
loss's classifier), ``speakers`` (the training speaker list, index = class),
``feature_settings`` (configure.py's recipe under its own names: ``filter_bank`` is
FILTER_BANK, the band count that model_args calls n_bands), ``win_size``, ``speed_factors``,
``whole_utterance`` (embed utterances whole, not in pieces), ``train_settings`` (every
setting of the run), ``epoch`` (the next epoch, as in the tutorial), ``valid_loss``,
``valid_acc``, ``history``, ``run_id``, and for resuming ``optimizer`` and ``scheduler`` states
(a shipped model has none: keep_best_only); after evaluate.py --store_threshold
``verification_threshold``, after whitening.py ``embedding_whitening`` and ``score_cohort``
(evaluate.py's AS-norm), after tools/calibrate.py ``score_calibration``. train.py writes them
all (train.save_epoch).
"""
import glob
import hashlib
import math
import os
import re
import shutil

import torch
import torch.nn as nn

from configure import SetupError
from dvector.features import model_level_db
from dvector.fileio import load_torch, remove_stale_temporaries, save_torch
from model import build_model
from model.fuse import fold_batchnorm, fold_whitening

CHECKPOINT_RE = re.compile(r'checkpoint_(\d+)\.pth$')
# whitening.py's entry: {'mean', 'matrix' (E, E), 'reg'}; with 'layer': 'pooling' the matrix is
# (E, D) on fc0's input; 'both' adds the d-vector's 'embedding_mean', 'embedding_matrix' and
# 'embedding_reg'
WHITENING_KEY = 'embedding_whitening'
# what only train.py --resume reads: a shipped model keeps none of it (keep_best_only)
RESUME_ONLY = ('optimizer', 'scheduler', 'started_from')
# whitening.py's (S, E) whitened, normalised d-vectors of the training speakers (AS-norm cohort;
# (S, 2E) for layer 'both')
COHORT_KEY = 'score_cohort'


def select_device(use_cuda: bool = True) -> torch.device:
    """CUDA when asked for and present, else the CPU (never a crash on a CPU-only machine)."""
    return torch.device('cuda' if use_cuda and torch.cuda.is_available() else 'cpu')


def checkpoint_path(log_dir: str, epoch: int) -> str:
    return os.path.join(log_dir, f'checkpoint_{epoch}.pth')


def list_checkpoints(log_dir: str) -> dict:
    """{epoch: path} of the checkpoints in ``log_dir``, sorted by epoch."""
    found = {}
    for path in glob.glob(os.path.join(log_dir, 'checkpoint_*.pth')):
        match = CHECKPOINT_RE.search(os.path.basename(path))
        if match and os.path.isfile(path):  # a folder named like one is not a checkpoint
            found[int(match.group(1))] = path
    return dict(sorted(found.items()))


def save_checkpoint(log_dir: str, epoch: int, checkpoint: dict) -> str:
    """Write ``checkpoint_<epoch>.pth`` atomically; returns its path."""
    path = checkpoint_path(log_dir, epoch)
    save_torch(checkpoint, path)
    return path


def set_aside_previous_run(log_dir: str) -> str:
    """Move another run's checkpoints and loss plot out of the way, into a new subfolder
    ``previous_run_<n>`` of ``log_dir``, so a new run never overwrites or mixes with them; also
    remove temporary files that a killed run left. Returns the subfolder ('' if none needed)."""
    remove_stale_temporaries(log_dir)
    files = list(list_checkpoints(log_dir).values())
    plot = os.path.join(log_dir, 'loss_plot.png')
    files += [plot] if os.path.isfile(plot) else []
    if not files:
        return ''
    n = 1
    while os.path.exists(os.path.join(log_dir, f'previous_run_{n}')):
        n += 1
    aside = os.path.join(log_dir, f'previous_run_{n}')
    os.makedirs(aside)
    for path in files:
        os.replace(path, os.path.join(aside, os.path.basename(path)))
    print(f'note: {log_dir} held another run ({len(files)} files): moved to {aside}/ '
          f'(move them back to use that model again)')
    return aside


def model_fingerprint(checkpoint: dict) -> str:
    """A short hash of everything that decides the embedding: the weights, the whitening and
    whole-utterance embedding."""
    digest = hashlib.sha1(b'whole_utterance' if checkpoint.get('whole_utterance') else b'')
    tensors = dict(checkpoint['state_dict'])
    for name, value in (checkpoint.get(WHITENING_KEY) or {}).items():
        if isinstance(value, torch.Tensor):
            tensors['whitening.' + name] = value
    for name in sorted(tensors):
        digest.update(name.encode())
        digest.update(tensors[name].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def add_to_checkpoint(path: str, key: str, name: str, record: dict, scored: dict) -> None:
    """Put ``record`` at checkpoint[key][name] of the file at ``path`` (rewritten atomically),
    the rest as it is. ``scored``: the checkpoint the record was measured on; if the file no
    longer holds that model (another program, e.g. tools/whitening.py, rewrote its weights or
    whitening meanwhile), SetupError and nothing stored: a record of one model is never given
    to another. The caller holds the folder's lock (fileio.folder_lock)."""
    checkpoint = load_torch(path)
    if model_fingerprint(checkpoint) != model_fingerprint(scored):
        raise SetupError(f'{path} changed while it was being measured (another program '
                         'rewrote its weights or whitening); nothing was stored: run the '
                         'command again')
    stored = dict(checkpoint.get(key) or {})
    stored[name] = record
    checkpoint[key] = stored
    save_torch(checkpoint, path)


def check_rewritable(path: str, why: str) -> None:
    """Before the work: SetupError unless the checkpoint at ``path`` can be rewritten (its
    folder writable, room on the disk for a new copy beside it: atomic_path writes the copy,
    then renames it; the file itself not marked read-only, a mark the rename would not
    respect); ``why`` says what rewrites it."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.stat(path).st_mode & 0o222:
        raise SetupError(f'{why}: {path} is read-only (chmod u+w it to let {why} rewrite it); '
                         'nothing was done')
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SetupError(f'{why}: cannot rewrite {path} ({folder} is not a writable folder); '
                         'nothing was done')
    need = os.path.getsize(path) * 1.2 + 2 ** 20  # the copy, and a cohort or threshold more
    free = shutil.disk_usage(folder).free
    if free < need:
        raise SetupError(f'{why}: not enough room on the disk to rewrite {path} '
                         f'({free / 2 ** 20:.0f} MB free, {need / 2 ** 20:.0f} MB needed); '
                         'nothing was done')


def checkpoints_in(log_dir: str) -> dict:
    """list_checkpoints, or a SetupError saying how to make one."""
    checkpoints = list_checkpoints(log_dir)
    if not checkpoints:
        raise SetupError(f'{log_dir}: no checkpoint_<epoch>.pth files (train a model first: '
                         'python train.py)')
    return checkpoints


def finite_loss(checkpoint: dict) -> float:
    """A checkpoint's validation loss; inf when it has no finite one (it is chosen last)."""
    loss = checkpoint.get('valid_loss') if isinstance(checkpoint, dict) else None
    if not isinstance(loss, (int, float)) or isinstance(loss, bool) or not math.isfinite(loss):
        return math.inf
    return float(loss)


def recorded_losses(last: dict, epochs: list) -> dict:
    """{epoch: validation loss} of ``epochs`` from the last checkpoint's history (train.py
    records every epoch's), or None when it does not cover them all (no history, another
    run's, a file of an epoch it never saw) or disagrees with the last checkpoint itself."""
    history = last.get('history') if isinstance(last, dict) else None
    try:
        recorded = dict(zip(history['epoch'], history['valid_loss'], strict=True))
    except (TypeError, KeyError, ValueError):
        return None
    if not set(epochs) <= set(recorded) or recorded[epochs[-1]] != last.get('valid_loss'):
        return None
    return {e: finite_loss({'valid_loss': recorded[e]}) for e in epochs}


def lowest_validation_loss(log_dir: str) -> tuple:
    """(epoch, checkpoint) of the checkpoint with the lowest validation loss (the latest of
    equals). The last checkpoint's history names it, so at most two files are read; without a
    history that covers every file (or when the chosen file disagrees with it), every file is
    read."""
    checkpoints = checkpoints_in(log_dir)
    epochs = list(checkpoints)
    last = load_torch(checkpoints[epochs[-1]])
    losses = recorded_losses(last, epochs)
    if losses is not None:
        best = min(reversed(epochs), key=losses.get)  # min keeps the first: the latest
        checkpoint = last if best == epochs[-1] else load_torch(checkpoints[best])
        if finite_loss(checkpoint) == losses[best] and run_of(checkpoint) == run_of(last):
            return best, checkpoint
    best, runs = None, {}  # runs: {run id: its epochs}
    for epoch, path in checkpoints.items():
        checkpoint = last if epoch == epochs[-1] else load_torch(path)
        runs.setdefault(run_of(checkpoint), []).append(epoch)
        loss = finite_loss(checkpoint)
        if best is None or loss <= best[0]:
            best = (loss, epoch, checkpoint)
    if len(runs) > 1:
        listed = '; '.join(', '.join(map(str, e)) for e in runs.values())
        raise SetupError(f'{log_dir}: holds the checkpoints of {len(runs)} training runs (epochs '
                         f'{listed}); the lowest validation loss is never chosen across runs: '
                         "move one run's checkpoints to another folder, or give cp_num")
    return best[1], best[2]


def run_of(checkpoint: dict):
    """The id of the training run that wrote a checkpoint (train.py's run_id; None for a file
    that has none)."""
    run = checkpoint.get('run_id') if isinstance(checkpoint, dict) else None
    return run if isinstance(run, str) else None


def read_checkpoint(log_dir: str, cp_num: int = 0) -> dict:
    """Load checkpoint ``cp_num`` (0 = lowest validation loss) from ``log_dir``; its 'cp_num'
    and 'path' are set."""
    checkpoints = checkpoints_in(log_dir)
    if cp_num:
        if cp_num not in checkpoints:
            raise SetupError(f'cp_num={cp_num}: no {checkpoint_path(log_dir, cp_num)}; '
                             'available epochs: ' + ', '.join(map(str, checkpoints)))
        checkpoint = load_torch(checkpoints[cp_num])
    else:
        cp_num, checkpoint = lowest_validation_loss(log_dir)
    checked(checkpoint, checkpoints[cp_num])
    checkpoint.update(cp_num=cp_num, path=checkpoints[cp_num])
    return checkpoint


def read_checkpoint_file(path: str) -> dict:
    """Load one checkpoint file (train.py's init_from), checked as read_checkpoint checks;
    its 'path' is set."""
    checkpoint = load_torch(path)
    checked(checkpoint, path)
    checkpoint['path'] = path
    return checkpoint


def checked(checkpoint: dict, path: str) -> None:
    """SetupError naming ``path`` unless the loaded ``checkpoint`` has a model_args dict and a
    state_dict of tensors."""
    missing = {'state_dict', 'model_args'} - set(checkpoint if isinstance(checkpoint, dict)
                                                 else {})
    if missing:
        raise SetupError(f'{path}: not a checkpoint of this project (missing '
                         + ', '.join(sorted(missing)) + ')')
    weights = checkpoint['state_dict']
    if not isinstance(checkpoint['model_args'], dict) or not isinstance(weights, dict) \
            or not all(torch.is_tensor(w) for w in weights.values()):
        raise SetupError(f'{path}: not a checkpoint of this project '
                         '(model_args or state_dict of the wrong kind)')


def weights_are_finite(weights: dict) -> bool:
    """Whether every floating-point tensor of a state_dict is free of NaN and infinities."""
    return all(torch.isfinite(w).all() for w in weights.values()
               if isinstance(w, torch.Tensor) and w.is_floating_point())


def model_from_checkpoint(checkpoint: dict, device: torch.device) -> nn.Module:
    """Rebuild the model from the checkpoint's own arguments and load its weights; SetupError
    (naming the file) for arguments that build no model or weights that are not finite."""
    where, args = checkpoint.get('path', 'the checkpoint'), checkpoint['model_args']
    weights = checkpoint['state_dict']
    try:
        model = build_model(**args)
        model.load_state_dict(weights)
    except SetupError:
        raise
    except Exception as err:  # an untrusted file: any way its arguments fail is one line
        raise SetupError(f'{where}: its weights and model_args {args} do not make a model '
                         f'({type(err).__name__}: {str(err).splitlines()[0]})') from None
    if not weights_are_finite(weights):
        raise SetupError(f'{where}: its weights are not finite (NaN or infinite); train again '
                         'with a lower --lr')
    return model.to(device).eval()


def checkpoint_wins(checkpoint: dict, settings: dict) -> list:
    """Notes for the script settings (backbone, pooling, embedding_size, ...) that differ from
    the checkpoint's model_args: the model is always rebuilt as it was trained."""
    notes = [f'note: the checkpoint was trained with {name}={value!r}; the setting '
             f'{name}={settings[name]!r} is not used'
             for name, value in checkpoint['model_args'].items()
             if name in settings and settings[name] != value]
    for note in notes:
        print(note)
    return notes


def load_model(log_dir: str, cp_num: int, device: torch.device, settings: dict = None) -> tuple:
    """The tutorial's load_model: (model in eval mode, checkpoint dict). The model is rebuilt
    from the checkpoint's model_args (backbone, pooling, sizes); ``settings`` (a script's) that
    say otherwise are reported and ignored. The returned model embeds only (inference_model):
    ``print(model)`` shows the slides' layers with each BatchNorm2d folded into the convolution
    before it (``FoldedBatchNorm(folded into conv1)``); model_from_checkpoint gives the layout
    as trained."""
    print('=> loading checkpoint')
    checkpoint = read_checkpoint(log_dir, cp_num)
    why = f'cp_num = {cp_num}' if cp_num else 'lowest validation loss (cp_num = 0)'
    print(f'{checkpoint["path"]}: {why}')
    checkpoint_wins(checkpoint, settings or {})
    if checkpoint.get('whole_utterance'):
        print('note: this model embeds each utterance whole (its checkpoint has whole_utterance='
              'True); test_frames is not used')
    return inference_model(checkpoint, device), checkpoint


def score_cohort(checkpoint: dict, top_k: int, log_dir: str) -> torch.Tensor:
    """The (C, E) cohort that whitening.py stores, for AS-norm with the ``top_k`` highest
    scores; SetupError when the checkpoint has none or top_k is outside 2..C."""
    cohort = checkpoint.get(COHORT_KEY)
    if cohort is None:
        folder = os.path.dirname(log_dir) if os.path.isfile(log_dir) else log_dir  # a file given
        epoch = f'--cp_num {checkpoint["cp_num"]} ' if checkpoint.get('cp_num') else ''
        raise SetupError(f'--as_norm {top_k}: the checkpoint {checkpoint.get("path", log_dir)} '
                         'has no score cohort; make one with python tools/whitening.py '
                         f'--log_dir {folder or "."} {epoch}--train_feat_dir <training '
                         'features> (or train with --whiten true)')
    if not 2 <= top_k <= len(cohort):
        raise SetupError(f'--as_norm {top_k}: give 2 to {len(cohort)} (the cohort\'s speakers) '
                         'top scores to normalise with, or 0 for plain cosine')
    print(f'Verification scores AS-normalised with the top {top_k} scores against '
          f'{len(cohort)} training speakers')
    return cohort


def inference_model(checkpoint: dict, device: torch.device) -> nn.Module:
    """The checkpoint's model for embedding only: BatchNorms folded into the convolutions,
    fc0 replaced by its whitened copy (model/fuse.fold_whitening) when the checkpoint has a
    whitening (whitening.py)."""
    model = fold_batchnorm(model_from_checkpoint(checkpoint, device))
    if checkpoint.get(WHITENING_KEY):
        try:
            fold_whitening(model, checkpoint[WHITENING_KEY])
        except (RuntimeError, KeyError) as err:  # a map fitted on another model, or cut short
            raise SetupError('the checkpoint\'s whitening does not fit its model; fit it again '
                             f'with tools/whitening.py ({type(err).__name__}: '
                             f'{str(err).splitlines()[0]})') from None
    model.whole_utterance = bool(checkpoint.get('whole_utterance'))  # read by embed_pieces
    # what embedding.check_feature_dims compares the features with: the band count the model
    # was trained on (None, not checked, for a file train.py did not write)
    model.feature_settings = checkpoint.get('feature_settings')
    model.n_bands = checkpoint['model_args'].get('n_bands')
    model.recording_level_db = model_level_db(checkpoint)  # recordings are set to it
    # channels_last (after folding, which makes new weights): about 2x faster convolutions on
    # CPUs, and tensor cores on GPUs
    return model.to(memory_format=torch.channels_last)


def keep_best_only(log_dir: str) -> str:
    """Keep only the lowest-validation-loss checkpoint, without optimizer state (for shipping)."""
    best, checkpoint = lowest_validation_loss(log_dir)
    checkpoints = list_checkpoints(log_dir)
    slim = {k: v for k, v in checkpoint.items() if k not in RESUME_ONLY}
    path = save_checkpoint(log_dir, best, slim)
    for epoch, other in checkpoints.items():
        if epoch != best:
            os.remove(other)
    return path
