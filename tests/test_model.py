import pytest
import torch

from configure import SetupError
from model import BACKBONES, build_model


@pytest.mark.parametrize('backbone', sorted(BACKBONES))
def test_every_resnet_gives_embedding_and_logits(backbone):
    model = build_model(backbone, embedding_size=64, n_classes=7)
    x = torch.randn(2, 1, 40, 48, requires_grad=True)
    emb, logits = model(x)
    assert emb.shape == (2, 64) and logits.shape == (2, 7)
    logits.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_batch_of_one_and_any_length_in_eval_mode():
    model = build_model('resnet18', 128, 10).eval()
    for frames in (7, 100, 333):
        emb, logits = model(torch.randn(1, 1, 40, frames))
        assert emb.shape == (1, 128) and logits.shape == (1, 10)


def test_tutorial_architecture_details():
    model = build_model('resnet18', 128, 240)
    stem = model.pretrained.conv1
    assert stem.kernel_size == (7, 7) and stem.stride == (1, 1) and stem.out_channels == 16
    layers = model.pretrained
    assert [layers.layer1[0].conv1.out_channels, layers.layer4[0].conv1.out_channels] == [16, 128]
    assert model.fc0.in_features == 128
    assert build_model('resnet50', 128, 240).fc0.in_features == 512


def test_unknown_backbone_lists_known_ones():
    with pytest.raises(SetupError, match='resnet18'):
        build_model('vgg99', 128, 3)


def test_stem_stride_2_halves_the_map_and_quarters_the_compute():
    from torch.utils.flop_counter import FlopCounterMode
    flops = {}
    for stride in (1, 2):
        model = build_model('resnet18', 128, 10, pooling='stats', stem_stride=stride).eval()
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            emb, logits = model(torch.randn(2, 1, 40, 100))
        flops[stride] = counter.get_total_flops()
        assert emb.shape == (2, 128) and logits.shape == (2, 10)
        assert model.feature_map(torch.randn(1, 1, 40, 100)).shape[2:] == \
            ((5, 13) if stride == 1 else (3, 7))
    assert 0.2 < flops[2] / flops[1] < 0.3


@pytest.mark.parametrize('backbone', sorted(BACKBONES))
def test_every_model_takes_its_sizes_by_the_project_names_n_classes_and_n_bands(backbone):
    """Issue 30 item 9: one name for the class count and one for the band count, the same
    keywords for every backbone (the models took num_classes, build_model n_classes)."""
    model = BACKBONES[backbone](embedding_size=16, n_classes=5, n_bands=24, pooling='stats')
    emb, logits = model.eval()(torch.randn(2, 1, 24, 64))
    assert emb.shape == (2, 16) and logits.shape == (2, 5)
