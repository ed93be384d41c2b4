import numpy as np
import pytest
import torch

from configure import SetupError
from dvector.embedding import embed_files, embed_utterances, l2_norm
from model import build_model
from SR_Dataset import read_MFB, to_input


def reference_embedding(model, feat, test_frames):
    """The tutorial's loop: one forward pass per piece, summed, then normalised."""
    total = 0
    with torch.no_grad():
        for start in range(0, len(feat), test_frames):
            total = total + model(to_input(feat[start:start + test_frames])[None])[0]
    return l2_norm(total)


def test_batched_embedding_equals_the_tutorial_loop():
    torch.manual_seed(0)
    model = build_model('resnet18', 32, 5).eval()
    rng = np.random.default_rng(0)
    feats = [rng.normal(size=(n, 40)).astype(np.float32) for n in (250, 100, 37, 420)]
    batched = embed_utterances(model, feats, 100, torch.device('cpu'))
    assert batched.shape == (4, 32)
    for i, feat in enumerate(feats):
        assert torch.allclose(batched[i], reference_embedding(model, feat, 100)[0], atol=1e-5)
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


def test_whole_utterances_are_one_piece_each_and_a_marked_model_always_embeds_them():
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
