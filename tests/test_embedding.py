import numpy as np
import torch

from embedding import embed_files, embed_utterance, embed_utterances, l2_norm
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
    single = embed_utterance(model, feats[0], 100, torch.device('cpu'))
    assert single.shape == (1, 32) and torch.allclose(single[0], batched[0], atol=1e-5)


def test_embed_files_reads_trimmed_features(feature_tree):
    _, test_dir = feature_tree
    model = build_model('resnet18', 16, 3).eval()
    path = f'{test_dir}/syn_t00/test.p'
    emb = embed_files(model, [path], 200, torch.device('cpu'))
    expected = embed_utterances(model, [read_MFB(path)[0]], 200, torch.device('cpu'))
    assert torch.equal(emb, expected)
