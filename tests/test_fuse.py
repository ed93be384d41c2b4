"""model/fuse.py: BatchNorm folding keeps the embeddings and removes every BatchNorm2d."""
import pytest
import torch
import torch.nn as nn

from model import build_model
from model.fuse import fold_batchnorm


def trained_like(model: nn.Module) -> nn.Module:
    """Non-trivial BN statistics and affine parameters, as after training."""
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    return model.eval()


@pytest.mark.parametrize('backbone', ['resnet18', 'resnet50', 'vgg'])
def test_folding_keeps_embeddings_and_removes_batchnorm(backbone):
    model = trained_like(build_model(backbone, 32, 5))
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    x = torch.randn(3, 1, 40, 57)
    with torch.no_grad():
        before = model(x)[0]
        folded = fold_batchnorm(model)
        after = folded(x)[0]
        again = folded(x.contiguous(memory_format=torch.channels_last))[0]
    assert n_bn > 0
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    # print(model) says where each BatchNorm went
    assert str(folded).count('FoldedBatchNorm(folded into ') == n_bn
    assert torch.allclose(before, after, atol=1e-4, rtol=1e-4)
    assert torch.allclose(after, again, atol=1e-4, rtol=1e-4)
    assert not folded.training


def test_lstm_has_nothing_to_fold():
    model = build_model('lstm', 16, 3, pooling='last').eval()
    x = torch.randn(2, 1, 40, 30)
    with torch.no_grad():
        before = model(x)[0]
        assert torch.equal(fold_batchnorm(model)(x)[0], before)
