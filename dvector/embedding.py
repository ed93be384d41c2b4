"""Utterance embeddings (d-vectors) from a trained model.

The tutorial's recipe: cut the (trimmed) features into consecutive, non-overlapping pieces of
``test_frames`` frames (the last one shorter), sum the model's embeddings of the pieces, and
L2-normalise. Pieces of equal length from many utterances go through the model together.
``test_frames = 0`` embeds each utterance whole, in one piece; a model trained with
``whole_utterance=True`` (train.py) always does, whatever ``test_frames`` says.
"""
from collections import defaultdict

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

import configure as c
from configure import SetupError
from dvector.vad import MIN_SPEECH_SECONDS
from SR_Dataset import load_features, read_MFB, to_input

# a test or enrollment shorter than this (after the trim) is refused: too little to recognise
# anyone by (the wav path's limit, dvector/vad.py)
MIN_FRAMES = round(MIN_SPEECH_SECONDS / c.HOP_SECONDS)  # 50 frames


def l2_norm(x: torch.Tensor) -> torch.Tensor:
    """Row-wise L2 normalisation, 1e-10 added under the square root as in the tutorial."""
    return x / torch.sqrt(torch.sum(x * x, dim=1, keepdim=True) + 1e-10)


def split_pieces(feat: np.ndarray, test_frames: int, drop_short_last: bool = False) -> list:
    """Consecutive non-overlapping pieces of ``test_frames`` frames (the last one shorter, or
    dropped when ``drop_short_last`` and under half a piece); 0: the whole utterance."""
    if test_frames < 0:
        raise SetupError(f'test_frames={test_frames}: give a piece length in frames, or 0 to '
                         'embed whole utterances')
    if test_frames == 0 or len(feat) <= test_frames:
        return [feat]
    pieces = [feat[i:i + test_frames] for i in range(0, len(feat), test_frames)]
    if drop_short_last and len(pieces[-1]) * 2 < test_frames:
        pieces.pop()
    return pieces


@torch.inference_mode()
def embed_pieces(model: nn.Module, feats: list, test_frames: int, device: torch.device,
                 batch_size: int = 0, progress: str = '') -> tuple:
    """The model's embedding of every piece: ((n_pieces, E) tensor, (n_pieces,) utterance index).

    Pieces of equal length from all utterances are stacked into batches of ``batch_size``
    (0: 32 on a CPU, where larger batches fall out of the cache and run slower; 512 on a GPU).
    A model marked ``whole_utterance`` by load_model embeds whole utterances (one piece each).
    ``progress``: the label of a progress bar (shown on a terminal only)."""
    batch_size = batch_size or (512 if device.type == 'cuda' else 32)
    if getattr(model, 'whole_utterance', False):
        test_frames = 0
    model.eval()
    groups = defaultdict(list)  # piece length -> [(utterance index, piece)]
    for index, feat in enumerate(feats):
        for piece in split_pieces(feat, test_frames):
            groups[len(piece)].append((index, piece))
    batches = [pieces[start:start + batch_size] for pieces in groups.values()
               for start in range(0, len(pieces), batch_size)]
    embeddings, owners = [], []
    for chunk in tqdm(batches, desc=progress, unit='batch', leave=False,
                      disable=None if progress else True):
        batch = torch.stack([to_input(p) for _, p in chunk]).to(device)  # (B, 1, 40, L)
        embeddings.append(model(batch)[0].float().cpu())                 # (B, E)
        owners += [i for i, _ in chunk]
    return torch.cat(embeddings), torch.tensor(owners)


def embed_utterances(model: nn.Module, feats: list, test_frames: int, device: torch.device,
                     batch_size: int = 0, progress: str = '', names: list = None) -> torch.Tensor:
    """(n_utterances, E) L2-normalised embeddings of (frames, bands) feature arrays: the sum
    of each utterance's piece embeddings, normalised. SetupError (naming the utterance by
    ``names``, else by number) for an embedding that is zero or not finite: absurd feature
    values, which would otherwise score alike against everyone."""
    pieces, owners = embed_pieces(model, feats, test_frames, device, batch_size, progress)
    embeddings = sum_pieces(pieces, owners, len(feats))
    check_embeddings(embeddings, names)
    return embeddings


def check_embeddings(embeddings: torch.Tensor, names: list = None) -> None:
    """SetupError for the first (E,) row of ``embeddings`` that is zero or not finite."""
    norms = embeddings.norm(dim=1)  # 1 once normalised; about 0 for a sum that was about 0
    bad = ~torch.isfinite(norms) | (norms < 0.5)
    if bad.any():
        first = int(bad.nonzero()[0])
        name = names[first] if names else f'utterance {first + 1}'
        kind = 'zero' if torch.isfinite(embeddings[first]).all() else 'not finite'
        raise SetupError(f'{name}: its d-vector is {kind} '
                         f'({int(bad.sum())} of {len(bad)} utterances): the features are not '
                         'what the model was trained on (values far out of range?); extract '
                         'them again with tools/extract_features.py')


def check_lengths(feats: list, names: list, minimum: int = MIN_FRAMES) -> None:
    """SetupError naming the first feature array shorter than ``minimum`` frames."""
    short = [(n, len(f)) for n, f in zip(names, feats) if len(f) < minimum]
    if short:
        raise SetupError(f'{short[0][0]}: too short to recognise a speaker by ({short[0][1]} '
                         f'frames after the trim, {short[0][1] * c.HOP_SECONDS:.2f} s; at '
                         f'least {minimum} frames, {minimum * c.HOP_SECONDS:g} s; '
                         f'{len(short)} of {len(names)} files)')


def sum_pieces(pieces: torch.Tensor, owners: torch.Tensor, n_utterances: int) -> torch.Tensor:
    """(n_utterances, E) L2-normalised sums of the (P, E) piece embeddings of each utterance;
    ``owners`` (P,) gives each piece's utterance (embed_pieces' second output)."""
    sums = torch.zeros(n_utterances, pieces.shape[1]).index_add_(0, owners, pieces)
    return l2_norm(sums)


def check_feature_dims(model: nn.Module, feats: list, names: list) -> None:
    """Refuse features whose band count is not the one the model was trained on (load_model
    sets ``model.n_bands`` from the checkpoint; a model without it is not checked)."""
    expected = getattr(model, 'n_bands', None)
    wrong = [(n, f.shape[1]) for n, f in zip(names, feats) if f.shape[1] != expected]
    if expected and wrong:
        raise SetupError(
            f'{wrong[0][0]}: {wrong[0][1]} feature bands, but the model was trained on '
            f'{expected} ({len(wrong)} of {len(names)} files differ); extract the features with '
            "the model's settings (configure.py)")


def embed_features(model: nn.Module, feats: list, names: list, test_frames: int,
                   device: torch.device) -> torch.Tensor:
    """(n, E) embeddings of (frames, bands) arrays, refused (naming the file in ``names``) when
    their band count is not the model's."""
    check_feature_dims(model, feats, names)
    check_lengths(feats, names)
    return embed_utterances(model, feats, test_frames, device, names=names)


def embed_files(model: nn.Module, files: list, test_frames: int,
                device: torch.device) -> torch.Tensor:
    """(n_files, E) embeddings of feature files, read and trimmed as for training: what
    get_embeddings gives for each file, with the pieces of all files batched together."""
    return embed_features(model, load_features(files), files, test_frames, device)


@torch.inference_mode()
def get_embeddings(model: nn.Module, filename: str, test_frames: int,
                   device: torch.device) -> torch.Tensor:
    """The slides' get_embeddings: the (1, E) d-vector of one feature file.

    The recipe as the slides write it, one forward pass per piece: read the features (read_MFB
    trims 0.5 s at each end), cut them into ``test_frames``-frame pieces (the last one shorter;
    a model trained with ``whole_utterance`` takes the utterance whole), run the model on each,
    sum the pieces' embeddings and L2-normalise the sum. The scripts embed many pieces at once
    (embed_files, embed_utterances): the same numbers, batched (tests/test_embedding.py compares
    the two). Refused in one line, as there: features of another band count than the model's,
    under 0.5 s, or giving a zero d-vector."""
    feat, _ = read_MFB(filename)                     # (n_frames, bands)
    check_feature_dims(model, [feat], [filename])
    check_lengths([feat], [filename])
    if getattr(model, 'whole_utterance', False):     # set by load_model from the checkpoint
        test_frames = 0
    model.eval()
    activation = 0
    for piece in split_pieces(feat, test_frames):    # (test_frames, bands), the last shorter
        embedding, _ = model(to_input(piece)[None].to(device))  # (1, E); logits unused
        activation = activation + embedding.float().cpu()
    activation = l2_norm(activation)                 # (1, E)
    check_embeddings(activation, [filename])
    return activation
