import os

import numpy as np
import pytest
import torch

import configure as c
from configure import SetupError
from dvector.embedding import embed_files, embed_utterances, get_embeddings, l2_norm
from dvector.fileio import save_pickle
from model import build_model
from SR_Dataset import read_MFB, to_input

CPU = torch.device('cpu')


def reference_embedding(model, feat, test_frames):
    """The tutorial's loop: one forward pass per piece, summed, then normalised."""
    total = 0
    with torch.no_grad():
        for start in range(0, len(feat), test_frames):
            total = total + model(to_input(feat[start:start + test_frames])[None])[0]
    return l2_norm(total)


def write_features(folder, feats: list) -> list:
    """Feature files whose features, once read_MFB has trimmed them, are ``feats``."""
    paths = []
    for i, feat in enumerate(feats):
        ends = np.ones((c.TRIM_FRAMES, feat.shape[1]), np.float32) * 9  # what the trim drops
        paths.append(os.path.join(folder, 'spk', f'u{i}.p'))
        save_pickle({'feat': np.concatenate([ends, feat, ends]), 'label': 'spk'}, paths[-1])
    return paths


def test_batched_embedding_equals_the_tutorial_loop(tmp_path):
    torch.manual_seed(0)
    model = build_model('resnet18', 32, 5).eval()
    rng = np.random.default_rng(0)
    feats = [rng.normal(size=(n, 40)).astype(np.float32) for n in (250, 100, 37, 420)]
    batched = embed_utterances(model, feats, 100, torch.device('cpu'))
    assert batched.shape == (4, 32)
    for i, feat in enumerate(feats):
        assert torch.allclose(batched[i], reference_embedding(model, feat, 100)[0], atol=1e-5)
    files = write_features(tmp_path, feats[:2] + feats[3:])  # 37 frames: too short to score
    for path, row in zip(files, batched[[0, 1, 3]]):  # the slides' function: the same numbers
        slides = get_embeddings(model, path, 100, CPU)
        assert slides.shape == (1, 32) and torch.allclose(slides[0], row, atol=1e-5)
    assert torch.allclose(batched.norm(dim=1), torch.ones(4), atol=1e-5)
    single = embed_utterances(model, feats[:1], 100, torch.device("cpu"))
    assert single.shape == (1, 32) and torch.allclose(single[0], batched[0], atol=1e-5)


def test_embed_files_reads_trimmed_features(feature_tree):
    _, test_dir = feature_tree
    model = build_model('resnet18', 16, 3).eval()
    path = f'{test_dir}/syn_t00/test.p'
    emb = embed_files(model, [path], 200, torch.device('cpu'))
    expected = embed_utterances(model, [read_MFB(path)[0]], 200, torch.device('cpu'))
    assert torch.equal(emb, expected)


def test_whole_utterances_are_one_piece_each_and_a_marked_model_always_embeds_them(tmp_path):
    torch.manual_seed(0)
    model = build_model('resnet18', 16, 3, pooling='stats').eval()
    rng = np.random.default_rng(1)
    feats = [rng.normal(size=(n, 40)).astype(np.float32) for n in (250, 90, 250)]
    whole = embed_utterances(model, feats, 0, torch.device('cpu'))
    for i, feat in enumerate(feats):
        assert torch.allclose(whole[i], reference_embedding(model, feat, len(feat))[0],
                              atol=1e-5)
    pieces = embed_utterances(model, feats, 100, torch.device('cpu'))
    assert not torch.allclose(whole[0], pieces[0], atol=1e-3)  # 3 pieces differ from 1
    model.whole_utterance = True  # what load_model sets for whole_utterance checkpoints
    assert torch.allclose(embed_utterances(model, feats, 100, torch.device('cpu')), whole,
                          atol=1e-6)
    with pytest.raises(SetupError, match='test_frames=-1'):
        embed_utterances(build_model('resnet18', 16, 3), feats, -1, torch.device('cpu'))
    files = write_features(tmp_path, feats)
    assert torch.allclose(get_embeddings(model, files[0], 100, CPU)[0], whole[0], atol=1e-5)


def test_get_embeddings_refuses_what_the_batched_path_refuses(tmp_path):
    model = build_model('resnet18', 16, 3).eval()
    model.n_bands = 40  # what load_model sets from the checkpoint
    rng = np.random.default_rng(2)
    narrow, short, huge = write_features(tmp_path, [
        rng.normal(size=(200, 20)).astype(np.float32), rng.normal(size=(30, 40)),
        rng.normal(size=(200, 40)) * 1e20])
    with pytest.raises(SetupError, match='u0.p: 20 feature bands, but the model was trained on 40'):
        get_embeddings(model, narrow, 100, CPU)
    with pytest.raises(SetupError, match=r'u1.p: too short .*30 frames after the trim'):
        get_embeddings(model, short, 100, CPU)
    with pytest.raises(SetupError, match='u2.p: its d-vector is zero'):
        get_embeddings(model, huge, 100, CPU)
