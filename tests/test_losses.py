"""The training losses: shapes, finite gradients and each loss's defining property."""
import math

import pytest
import torch
import torch.nn.functional as F

from configure import SetupError
from model.losses import LOSSES, build_loss, loss_settings
from model.losses.asoftmax import psi
from model.losses.softmaxproto import queries_and_prototypes

E, N = 16, 5


def batch(seed=0, n=6):
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(n, E, generator=g, requires_grad=True)
    logits = torch.randn(n, N, generator=g, requires_grad=True)
    return emb, logits, torch.arange(n) % N


def cosines(loss, emb):
    return F.normalize(emb.detach()) @ F.normalize(loss.classifier.weight.detach()).T


@pytest.mark.parametrize('loss_type', sorted(LOSSES))
def test_shapes_and_finite_gradients(loss_type):
    loss_fn = build_loss(loss_type, E, N)
    emb, logits, targets = batch()
    loss, scores = loss_fn(emb, logits, targets)
    assert loss.shape == () and torch.isfinite(loss) and scores.shape == (6, N)
    loss.backward()
    grads = [g for g in (emb.grad, logits.grad) if g is not None]
    grads += [p.grad for p in loss_fn.parameters()]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_softmax_is_the_tutorials_cross_entropy():
    emb, logits, targets = batch()
    loss, scores = build_loss('softmax', E, N)(emb, logits, targets)
    assert torch.allclose(loss, F.cross_entropy(logits, targets)) and scores is logits


def test_amsoftmax_target_logit_is_s_times_cos_minus_m():
    loss_fn = build_loss('amsoftmax', E, N, margin=0.3, scale=20)
    emb, _, targets = batch()
    cos = cosines(loss_fn, emb)
    out = loss_fn.margin_logits(loss_fn.classifier(emb), targets).detach()
    target = F.one_hot(targets, N).bool()
    assert torch.allclose(out[target], 20 * (cos[target] - 0.3), atol=1e-5)
    assert torch.allclose(out[~target], 20 * cos[~target], atol=1e-5)


def test_aamsoftmax_target_logit_is_s_times_cos_theta_plus_m():
    loss_fn = build_loss('aamsoftmax', E, N)  # defaults m = 0.2, s = 30
    assert (loss_fn.margin, loss_fn.scale) == (0.2, 30.0)
    emb, _, targets = batch()
    cos = cosines(loss_fn, emb)
    out = loss_fn.margin_logits(loss_fn.classifier(emb), targets).detach()
    target = F.one_hot(targets, N).bool()
    theta = torch.acos(cos[target])
    expected = torch.where(theta + 0.2 < math.pi, torch.cos(theta + 0.2),
                           cos[target] - math.sin(math.pi - 0.2) * 0.2)
    assert torch.allclose(out[target], 30 * expected, atol=1e-4)
    assert torch.allclose(out[~target], 30 * cos[~target], atol=1e-4)


def test_aamsoftmax_threshold_keeps_the_target_logit_decreasing():
    loss_fn = build_loss('aamsoftmax', E, N, margin=0.5)
    cos = torch.linspace(-1, 1, 201).reshape(-1, 1).repeat(1, N)
    out = loss_fn.margin_logits(cos, torch.zeros(201, dtype=torch.long))[:, 0]
    assert (out[1:] >= out[:-1] - 1e-5).all()  # monotone in cos theta, no jump back up


def test_margin_losses_score_accuracy_without_the_margin():
    for loss_type in ('amsoftmax', 'aamsoftmax'):
        loss_fn = build_loss(loss_type, E, N)
        emb, logits, targets = batch()
        _, scores = loss_fn(emb, logits, targets)
        assert torch.allclose(scores, 30 * cosines(loss_fn, emb), atol=1e-4)


def test_asoftmax_psi_is_the_monotone_cos_m_theta():
    theta = torch.linspace(0.01, math.pi - 0.01, 300)
    for m in (1, 2, 3, 4):
        values = psi(torch.cos(theta), m)
        assert (values[1:] < values[:-1]).all()                           # decreasing
        small = theta < math.pi / m
        assert torch.allclose(values[small], torch.cos(m * theta[small]), atol=1e-4)
    assert torch.allclose(psi(torch.cos(theta), 1), torch.cos(theta), atol=1e-5)


def test_asoftmax_target_logit_and_annealing():
    loss_fn = build_loss('asoftmax', E, N)  # m = 4, feature norm
    emb, logits, targets = batch()
    cos = cosines(loss_fn, emb)
    norm = emb.detach().norm(dim=1, keepdim=True)
    with_margin, plain = loss_fn.margin_logits(emb, targets, lamb=0.0)
    target = F.one_hot(targets, N).bool()
    assert torch.allclose(with_margin.detach()[target], (norm * psi(cos, 4))[target], atol=1e-4)
    assert torch.allclose(plain.detach(), norm * cos, atol=1e-4)
    assert loss_fn.current_lambda() == 1000.0
    for _ in range(3):
        loss_fn(emb, logits, targets)
    assert loss_fn.iteration.item() == 3 and loss_fn.current_lambda() < 1000.0
    assert 'iteration' in loss_fn.state_dict()
    loss_fn.iteration.fill_(10 ** 6)
    assert loss_fn.current_lambda() == 5.0
    with pytest.raises(SetupError, match='integer'):
        build_loss('asoftmax', E, N, margin=2.5)


def test_center_loss_is_zero_at_the_centres_and_pulls_towards_them():
    loss_fn = build_loss('center', E, N, center_weight=0.5)
    targets = torch.arange(6) % N
    at_centres = loss_fn.centers.detach()[targets].clone().requires_grad_(True)
    assert loss_fn.center_term(at_centres, targets).item() == pytest.approx(0.0, abs=1e-7)
    emb = (at_centres.detach() + torch.randn(6, E)).requires_grad_(True)
    loss_fn.center_term(emb, targets).backward()
    step = emb.detach() - 0.1 * emb.grad
    before = (emb.detach() - loss_fn.centers.detach()[targets]).norm(dim=1)
    after = (step - loss_fn.centers.detach()[targets]).norm(dim=1)
    assert (after < before).all()
    logits = torch.randn(6, N)
    total, _ = loss_fn(emb, logits, targets)
    expected = F.cross_entropy(logits, targets) + 0.5 * loss_fn.center_term(emb, targets)
    assert torch.allclose(total, expected)


def test_defaults_and_bad_settings_name_the_setting():
    assert loss_settings('aamsoftmax') == {'margin': 0.2, 'scale': 30.0, 'center_weight': 0.0}
    assert loss_settings('amsoftmax', 0.35, 0)['margin'] == 0.35
    assert loss_settings('asoftmax') == {'margin': 4.0, 'scale': 0.0, 'center_weight': 0.0}
    assert loss_settings('softmax') == {'margin': 0.0, 'scale': 0.0, 'center_weight': 0.0}
    assert loss_settings('center')['center_weight'] == 0.01
    with pytest.raises(SetupError, match="unknown loss_type 'arcface'.*aamsoftmax"):
        loss_settings('arcface')
    with pytest.raises(SetupError, match='margin=1.5 is out of range'):
        build_loss('aamsoftmax', E, N, margin=1.5)
    with pytest.raises(SetupError, match='scale=-3 is out of range'):
        build_loss('amsoftmax', E, N, scale=-3)
    with pytest.raises(SetupError, match='margin=0.2: .*softmax.* has no margin'):
        build_loss('softmax', E, N, margin=0.2)
    with pytest.raises(SetupError, match='center_weight'):
        build_loss('center', E, N, center_weight=-1)
    with pytest.raises(SetupError, match="center_weight=0.5: loss_type='aamsoftmax' has no"):
        build_loss('aamsoftmax', E, N, center_weight=0.5)


@pytest.mark.parametrize('loss_type', LOSSES)
def test_every_loss_is_built_alike_and_checks_its_own_settings(loss_type):
    """One call builds any loss (no case in build_loss): the same keywords, and each loss's
    SETTINGS say which it uses; a setting it lacks is refused when not 0."""
    cls = LOSSES[loss_type]
    loss_fn = cls(E, N, margin=0.0, scale=0.0, center_weight=0.0)
    for name in ('margin', 'scale', 'center_weight'):
        default = cls.SETTINGS[name][0] if name in cls.SETTINGS else 0.0
        assert getattr(loss_fn, name) == default
        if name not in cls.SETTINGS:
            with pytest.raises(SetupError, match=f'{name}=0.1: .* has no {name}'):
                cls(E, N, **{name: 0.1})
        else:
            with pytest.raises(SetupError, match=f'{name}=-1 is out of range'):
                cls(E, N, **{name: -1.0})


def test_model_with_loss_is_what_ddp_wraps():
    from model import build_model
    from model.losses import ModelWithLoss
    torch.manual_seed(0)
    model, loss_fn = build_model('resnet18', E, N).eval(), build_loss('aamsoftmax', E, N)
    x, targets = torch.randn(2, 1, 40, 30), torch.tensor([0, 3])
    loss, scores = ModelWithLoss(model, loss_fn)(x, targets)
    emb, logits = model(x)
    expected, _ = loss_fn(emb, logits, targets)
    assert torch.allclose(loss, expected) and scores.shape == (2, N)
    assert not loss_fn.USES_LOGITS and build_loss('softmax', E, N).USES_LOGITS


def test_softmaxproto_queries_are_last_crops_and_prototypes_the_mean_of_the_rest():
    emb = torch.randn(7, E)
    targets = torch.tensor([0, 1, 0, 2, 0, 1, 3])  # classes 2 and 3 have one crop: no query
    queries, prototypes = queries_and_prototypes(emb, targets)
    assert torch.equal(queries, emb[[4, 5]])
    assert torch.allclose(prototypes, torch.stack([(emb[0] + emb[2]) / 2, emb[1]]))


def test_softmaxproto_adds_the_prototype_cross_entropy_in_training_only():
    loss_fn = build_loss('softmaxproto', E, N)
    emb, logits, _ = batch(n=6)
    targets = torch.tensor([0, 0, 1, 1, 2, 2])  # three pairs, as PairBatchSampler gives them
    cos = F.normalize(emb[[0, 2, 4]].detach()) @ F.normalize(emb[[1, 3, 5]].detach()).T
    ap = F.cross_entropy(10 * cos.T, torch.arange(3))  # queries: the pairs' second crops
    loss, scores = loss_fn(emb, logits, targets)
    assert torch.allclose(loss, F.cross_entropy(logits, targets) + ap, atol=1e-5)
    assert scores is logits
    loss.backward()
    assert loss_fn.w.grad is not None and loss_fn.w.grad != 0
    loss_fn.eval()  # validation: the softmax term alone
    assert torch.allclose(loss_fn(emb, logits, targets)[0], F.cross_entropy(logits, targets))


def test_softmaxproto_prefers_pairs_that_match():
    loss_fn = build_loss('softmaxproto', E, N)
    speakers = F.normalize(torch.randn(4, E), dim=1)
    emb = speakers.repeat_interleave(2, dim=0) + 0.05 * torch.randn(8, E)  # pairs of one voice
    targets = torch.arange(4).repeat_interleave(2)
    matched = loss_fn.prototype_term(emb, targets)
    mismatched = loss_fn.prototype_term(emb, targets[torch.tensor([0, 2, 1, 4, 3, 6, 5, 7])])
    assert matched < 0.01 < mismatched


@pytest.mark.parametrize('loss_type', sorted(LOSSES))
def test_fine_tuning_starts_class_weights_at_the_class_means(loss_type):
    """train.py's init_from: a loss's own class weights become the class means (the direction
    of each, for a cosine classifier); a class never seen (a zero mean) keeps its weights."""
    loss_fn = build_loss(loss_type, E, N)
    before = {k: v.clone() for k, v in loss_fn.state_dict().items()}
    means = torch.randn(N, E, generator=torch.Generator().manual_seed(3))
    means[2] = 0
    loss_fn.start_from_class_means(means)
    after = loss_fn.state_dict()
    seen = [0, 1, 3, 4]
    if hasattr(loss_fn, 'classifier'):
        weight = after['classifier.weight']
        assert torch.allclose(weight[seen], F.normalize(means[seen]), atol=1e-6)
        assert torch.equal(weight[2], before['classifier.weight'][2])
    elif hasattr(loss_fn, 'centers'):
        assert torch.allclose(after['centers'][seen], means[seen])
        assert torch.equal(after['centers'][2], before['centers'][2])
    else:  # the model's `last` layer is its classifier: nothing of the loss's own changes
        assert all(torch.equal(after[k], before[k]) for k in before)
