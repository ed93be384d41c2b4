"""Within-speaker whitening (WCCN) of the d-vectors, fitted on the training speakers.

A softmax-trained d-vector spends much of its length on directions in which one speaker's
utterances differ from each other (channel, phonetic content), and cosine scoring weighs
those as much as the directions that tell speakers apart. Whitening the within-speaker
covariance (Hatch et al., WCCN, 2006) shrinks the first and stretches the second:

    e' = T (e - mean),   T = (S_w + reg * trace(S_w) / E * I) ^ (-1/2)

``mean`` and ``S_w`` come from the embeddings of the training speakers' 100-frame pieces (the
same pieces that enrollment and scoring sum; whole utterances for a model trained with
``whole_utterance=True``). The map is linear, so load_model folds it into
fc0 (model/fuse.py) and every script (enroll, identification, verification, evaluate) uses
it unchanged, with cosine scoring as before. ``reg`` keeps directions that the training
speakers never vary in from being stretched without bound.

The training speakers' whitened d-vectors are stored too (``score_cohort``): evaluate.py's
``--as_norm`` scores trials against them.

With ``layer='pooling'`` the whitening is fitted one layer lower, on fc0's input (the pooled
statistics, e.g. 1,536 numbers for ECAPA with stats pooling), and followed by LDA: of the
whitened directions, the embedding_size in which the training speakers' means differ most
(Fisher, 1936). That map replaces fc0 for embedding, so the d-vector keeps its size. fc0 was
trained only to feed the classifier of the training speakers; fitted one layer lower, on the
same speakers' utterances, the map can keep what fc0 dropped that tells new speakers apart.
There are many more numbers than utterances per speaker to estimate S_w from, so the default
reg is larger (pooling_reg).

With ``layer='both'`` both maps are fitted and the d-vector is the two whitened d-vectors,
each normalised, side by side (twice embedding_size numbers; model/fuse.JointWhitening): its
cosine is the mean of the two cosines: where the two make different errors, their mean can be
better than either. The map is no longer linear: the cohort is made of the joint embeddings,
and bn0 and the classifier are dropped for embedding.

tools/whitening.py fits it on a trained run; train.py does it at the end of training with
``--whiten true``. Enroll again after.

What each layer gains, measured: docs/RESULTS.md, sections 2 (whitening) and 6 (which layer).
"""
import torch

from configure import SetupError
from DB_wav_reader import read_training_folders
from dvector.calibration import CALIBRATION_KEY
from dvector.checkpoint import (
    COHORT_KEY,
    WHITENING_KEY,
    check_rewritable,
    inference_model,
    read_checkpoint,
    save_checkpoint,
)
from dvector.embedding import check_feature_dims, embed_pieces, l2_norm, sum_pieces
from dvector.enrollment import sum_per_speaker
from dvector.fileio import remove_stale_temporaries
from dvector.threshold import THRESHOLD_KEY
from model.fuse import whitened_fc0
from SR_Dataset import load_features

LAYERS = ('embedding', 'pooling', 'both')  # where the whitening can be fitted


def speaker_means(x: torch.Tensor, speakers: list) -> tuple:
    """((S, D) mean of each speaker's rows of the (N, D) x, speakers sorted; (N,) row -> speaker
    index); SetupError unless there are 2 speakers or more and more rows than speakers."""
    labels = sorted(set(speakers))
    if len(labels) < 2 or len(x) <= len(labels):
        raise SetupError(f'whitening needs at least 2 speakers with several pieces each; '
                         f'got {len(x)} pieces of {len(labels)} speakers')
    number = {s: i for i, s in enumerate(labels)}
    index = torch.tensor([number[s] for s in speakers])
    means = torch.zeros(len(labels), x.shape[1], dtype=x.dtype).index_add_(0, index, x)
    return means / torch.bincount(index, minlength=len(labels)).unsqueeze(1), index


def fit_wccn(embeddings: torch.Tensor, speakers: list, reg: float = 0.2,
             setting: str = 'reg') -> dict:
    """{'mean', 'matrix'} whitening the within-speaker covariance of (N, E) embeddings;
    ``setting`` names reg in the error for a negative one."""
    if reg < 0:
        raise SetupError(f'--{setting} {reg}: the regularisation must be >= 0')
    x = embeddings.double()
    means, index = speaker_means(x, speakers)
    within = x - means[index]                                  # (N, E)
    cov = within.T @ within / len(x)                           # (E, E)
    cov += reg * cov.trace() / len(cov) * torch.eye(len(cov), dtype=x.dtype)
    values, vectors = torch.linalg.eigh(cov)
    matrix = vectors @ torch.diag(values.rsqrt()) @ vectors.T  # cov^(-1/2), symmetric
    return {'mean': x.mean(0).float(), 'matrix': matrix.float(), 'reg': reg}


def fit_wccn_lda(pooled: torch.Tensor, speakers: list, dims: int, reg: float = 1.0) -> dict:
    """{'mean', 'matrix' (dims, D), 'layer': 'pooling'}: WCCN of the (N, D) pooled statistics,
    then projection on the ``dims`` whitened directions with the largest between-speaker
    variance. A speaker set spans at most S - 1 such directions; rows past them stay zero,
    so cosine scores ignore them."""
    wccn = fit_wccn(pooled, speakers, reg, 'pooling_reg')
    white = (pooled.double() - wccn['mean'].double()) @ wccn['matrix'].double().T  # (N, D)
    means, _ = speaker_means(white, speakers)
    between = means - means.mean(0)                                             # (S, D)
    values, vectors = torch.linalg.eigh(between.T @ between / len(between))
    keep = min(dims, len(between) - 1, len(values))
    lda = torch.zeros(dims, len(values), dtype=white.dtype)
    lda[:keep] = vectors[:, values.argsort(descending=True)[:keep]].T          # (dims, D)
    matrix = lda @ wccn['matrix'].double()                                      # (dims, D)
    return {**wccn, 'matrix': matrix.float(), 'layer': 'pooling'}


@torch.inference_mode()
def embed_pooled(model: torch.nn.Module, feats: list, test_frames: int,
                 device: torch.device) -> tuple:
    """embed_pieces, returning fc0's input (the pooled statistics) instead of its output."""
    pooled = []
    hook = model.pool.register_forward_hook(lambda module, args, out: pooled.append(out.cpu()))
    try:
        _, owners = embed_pieces(model, feats, test_frames, device,
                                 progress='embedding the training speakers')
    finally:
        hook.remove()
    return torch.cat(pooled).float(), owners


def speaker_cohort(white: torch.Tensor, owners: torch.Tensor, speakers: list) -> torch.Tensor:
    """(S, E) normalised whitened d-vector of each speaker (sorted), from the (P, E) whitened
    d-vectors of the pieces; ``owners`` (P,) gives each piece's utterance, ``speakers`` each
    utterance's speaker."""
    sums = sum_per_speaker(speakers, sum_pieces(white, owners, len(speakers)))
    return l2_norm(torch.cat([sums[s] for s in sorted(sums)]))             # (S, E)


def fit_layer(pooled: torch.Tensor, fc0: torch.nn.Linear, speakers: list, layer: str,
              reg: float = 0.2, pooling_reg: float = 1.0) -> dict:
    """The whitening of ``layer``, fitted on the (P, D) pooled statistics of pieces whose
    speakers are ``speakers``: 'embedding' (WCCN of fc0's output, reg), 'pooling' (WCCN + LDA
    of fc0's input, pooling_reg) or 'both' (the two, stored side by side)."""
    if layer == 'embedding':
        with torch.no_grad():
            return fit_wccn(fc0(pooled), speakers, reg)
    whitening = fit_wccn_lda(pooled, speakers, fc0.out_features, pooling_reg)
    if layer == 'both':
        embedding = fit_layer(pooled, fc0, speakers, 'embedding', reg)
        whitening.update({'layer': 'both', 'embedding_mean': embedding['mean'],
                          'embedding_matrix': embedding['matrix'], 'embedding_reg': reg})
    return whitening


def whiten_checkpoint(log_dir: str, cp_num: int, train_feat_dir: str, device: torch.device,
                      test_frames: int = 100, whole_utterance: bool = False,
                      layer: str = 'embedding', reg: float = 0.2,
                      pooling_reg: float = 1.0) -> str:
    """Fit the whitening of ``layer`` on ``train_feat_dir`` with checkpoint ``cp_num`` (0 =
    best) and store it, with the whitened training speakers as AS-norm cohort, in that
    checkpoint (atomically); returns the checkpoint's path."""
    if layer not in LAYERS:
        raise SetupError(f'--layer {layer!r}: give one of ' + ', '.join(LAYERS))
    checkpoint = read_checkpoint(log_dir, cp_num)
    epoch = checkpoint.pop('cp_num')
    check_rewritable(checkpoint.pop('path'), 'whitening')  # before the work, not after
    checkpoint.pop(WHITENING_KEY, None)  # fit on the plain embeddings, not on whitened ones
    if whole_utterance:
        checkpoint['whole_utterance'] = True
    model = inference_model(checkpoint, device)
    table = read_training_folders(train_feat_dir)
    print(f'Fitting within-speaker whitening on {len(table)} files of '
          f'{table["speaker_id"].nunique()} speakers (checkpoint {epoch})')
    feats = load_features(list(table['filename']))
    check_feature_dims(model, feats, list(table['filename']))
    speakers = list(table['speaker_id'])
    pooled, owners = embed_pooled(model, feats, test_frames, device)           # (P, D), (P,)
    fc0 = model.fc0.cpu()  # where embed_pooled leaves the pooled statistics
    whitening = fit_layer(pooled, fc0, [speakers[i] for i in owners.tolist()], layer, reg,
                          pooling_reg)
    with torch.no_grad():
        white = whitened_fc0(fc0, whitening)(pooled)                           # (P, E or 2E)
    checkpoint[WHITENING_KEY] = whitening
    checkpoint[COHORT_KEY] = speaker_cohort(white, owners, speakers)
    if checkpoint.pop(THRESHOLD_KEY, None):  # measured on the old scores' scale
        print('note: the threshold stored with this model was measured before this whitening and '
              'is dropped; measure it again with evaluate.py --store_threshold true')
    if checkpoint.pop(CALIBRATION_KEY, None):  # fitted on the old scores too
        print('note: the score calibration stored with this model was fitted before this '
              f'whitening and is dropped; fit it again with python tools/calibrate.py --log_dir '
              f'{log_dir}')
    remove_stale_temporaries(log_dir)  # a killed writer's (the callers hold log_dir's lock)
    return save_checkpoint(log_dir, epoch, checkpoint)

