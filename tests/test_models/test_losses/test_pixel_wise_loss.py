import math

import pytest
import torch

from mmkd.models.losses import PixelWiseLoss
from mmkd.registry import MODELS


def _naive(s, t, mode, tau=1.0):
    """Loop over images and pixels; per pixel, KL or CE of two C-vectors.

    Returns the per-image losses (sum over pixels / (H * W)), shape (B, ).
    """
    B, C, H, W = s.shape
    out = []
    for b in range(B):
        acc = 0.0
        for h in range(H):
            for w in range(W):
                ps = torch.softmax(s[b, :, h, w].double() / tau, dim=0)
                pt = torch.softmax(t[b, :, h, w].double() / tau, dim=0)
                ce = -sum(pt[c] * torch.log(ps[c]) for c in range(C))
                ent = -sum(pt[c] * torch.log(pt[c]) for c in range(C))
                acc = acc + (ce if mode == 'ce' else ce - ent)
        out.append(acc * tau**2 / (H * W))
    return torch.stack(out)


@pytest.fixture
def logits():
    torch.manual_seed(0)
    return torch.randn(2, 4, 3, 5) * 2, torch.randn(2, 4, 3, 5) * 2


@pytest.mark.parametrize('mode', ['kl', 'ce'])
@pytest.mark.parametrize('batch_reduction', ['sum', 'mean'])
def test_against_naive_loop(logits, mode, batch_reduction):
    s, t = logits
    loss = PixelWiseLoss(mode=mode, batch_reduction=batch_reduction)(s, t)
    per_image = _naive(s, t, mode)
    expected = per_image.sum() if batch_reduction == 'sum' else \
        per_image.mean()
    assert torch.allclose(loss.double(), expected, rtol=1e-5, atol=1e-6)


def test_default_is_kl_summed_over_batch(logits):
    s, t = logits
    loss = PixelWiseLoss()(s, t)
    assert torch.allclose(loss.double(),
                          _naive(s, t, 'kl').sum(),
                          rtol=1e-5,
                          atol=1e-6)


def test_temperature(logits):
    s, t = logits
    loss = PixelWiseLoss(tau=2.0)(s, t)
    assert torch.allclose(loss.double(),
                          _naive(s, t, 'kl', tau=2.0).sum(),
                          rtol=1e-5)


def test_ce_minus_kl_is_teacher_entropy(logits):
    s, t = logits
    kl = PixelWiseLoss(mode='kl')(s, t)
    ce = PixelWiseLoss(mode='ce')(s, t)
    B, C, H, W = t.shape
    p = torch.softmax(t.double(), dim=1)
    entropy = -(p * p.log()).sum() / (H * W)  # summed over the batch
    assert torch.allclose((ce - kl).double(), entropy, rtol=1e-5)
    assert ce > kl


def test_kl_and_ce_have_the_same_student_gradient(logits):
    s, t = logits
    grads = []
    for mode in ('kl', 'ce'):
        s_ = s.clone().requires_grad_(True)
        PixelWiseLoss(mode=mode)(s_, t).backward()
        grads.append(s_.grad)
    assert grads[0].abs().max() > 0
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_gradient_only_reaches_student(logits):
    s, t = logits
    s = s.clone().requires_grad_(True)
    t = t.clone().requires_grad_(True)
    PixelWiseLoss(loss_weight=10.)(s, t).backward()
    assert t.grad is None
    assert s.grad.abs().sum() > 0


def test_zero_when_equal_and_loss_weight(logits):
    s, _ = logits
    assert PixelWiseLoss()(s, s.clone()).abs() < 1e-6
    _, t = logits
    assert torch.allclose(
        PixelWiseLoss(loss_weight=10.)(s, t), 10 * PixelWiseLoss()(s, t))


def test_sum_grows_with_batch_mean_does_not(logits):
    s, t = logits
    s2, t2 = torch.cat([s, s]), torch.cat([t, t])
    assert torch.allclose(
        PixelWiseLoss(batch_reduction='sum')(s2, t2),
        2 * PixelWiseLoss(batch_reduction='sum')(s, t))
    assert torch.allclose(
        PixelWiseLoss(batch_reduction='mean')(s2, t2),
        PixelWiseLoss(batch_reduction='mean')(s, t))


def test_bad_input():
    loss = PixelWiseLoss()
    with pytest.raises(ValueError, match='same shape'):
        loss(torch.randn(1, 4, 8, 8), torch.randn(1, 4, 4, 4))
    with pytest.raises(ValueError, match='B, C, H, W'):
        loss(torch.randn(2, 4), torch.randn(2, 4))
    with pytest.raises(ValueError):
        PixelWiseLoss(mode='mse')
    with pytest.raises(ValueError):
        PixelWiseLoss(batch_reduction='none')
    with pytest.raises(ValueError):
        PixelWiseLoss(tau=0)


def test_build_from_registry():
    loss = MODELS.build(dict(type='PixelWiseLoss', mode='ce', loss_weight=10.))
    assert isinstance(loss, PixelWiseLoss)
    assert loss.mode == 'ce' and math.isclose(loss.loss_weight, 10.)
