"""DISTLoss against the authors' formula, written vector by vector."""
import math

import pytest
import torch

from mmkd.models.losses import DISTLoss
from mmkd.registry import MODELS


def pearson(u, v):
    """sum (u - mean u)(v - mean v) / (|u - mean u| |v - mean v| + 1e-8)."""
    du, dv = u - u.sum() / len(u), v - v.sum() / len(v)
    return (du * dv).sum() / (
        torch.sqrt((du**2).sum()) * torch.sqrt((dv**2).sum()) + 1e-8)


def reference_dist(z_s, z_t, beta, gamma, tau):
    """float64. Rows are samples (for dense logits, the pixels, gathered in
    (b, h, w) loops); softmax per row at temperature tau; inter = 1 - mean
    over rows of rho, intra = 1 - mean over classes of rho."""
    if z_s.dim() == 4:
        B, K, H, W = z_s.shape
        z_s = torch.stack([
            z_s[b, :, h, w] for b in range(B) for h in range(H)
            for w in range(W)
        ])
        z_t = torch.stack([
            z_t[b, :, h, w] for b in range(B) for h in range(H)
            for w in range(W)
        ])
    e_s, e_t = torch.exp(z_s / tau), torch.exp(z_t / tau)
    y_s = e_s / e_s.sum(1, keepdim=True)
    y_t = e_t / e_t.sum(1, keepdim=True)
    N, K = y_s.shape
    inter = 1 - sum(pearson(y_s[n], y_t[n]) for n in range(N)) / N
    intra = 1 - sum(pearson(y_s[:, k], y_t[:, k]) for k in range(K)) / K
    return tau**2 * (beta * inter + gamma * intra)


def _logits(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(*shape, generator=g, dtype=torch.float64) * 3
    t = torch.randn(*shape, generator=g, dtype=torch.float64) * 3
    return s, t


def _rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize('shape,beta,gamma,tau', [
    ((6, 10), 1.0, 1.0, 1.0),
    ((6, 10), 1.0, 1.0, 4.0),
    ((5, 7), 2.0, 0.5, 2.0),
    ((2, 5, 3, 4), 1.0, 1.0, 1.0),
])
def test_value_and_gradient_match_the_reference(shape, beta, gamma, tau):
    s, t = _logits(shape)
    x = s.clone().requires_grad_(True)
    loss = MODELS.build(
        dict(
            type='DISTLoss', beta=beta, gamma=gamma, tau=tau,
            loss_weight=2.0))(x, t)
    x_ref = s.clone().requires_grad_(True)
    ref = 2.0 * reference_dist(x_ref, t, beta, gamma, tau)
    assert loss.dtype == torch.float64 and loss.dim() == 0
    assert _rel(loss, ref) <= 1e-10
    loss.backward()
    ref.backward()
    assert x.grad.abs().sum() > 0
    assert _rel(x.grad, x_ref.grad) <= 1e-10


def test_own_logits_leave_the_epsilon_and_shifts_change_nothing():
    """rho(u, u) = |u'|^2 / (|u'|^2 + 1e-8), u' centred: 1 - rho is what
    the epsilon leaves, per row and per class."""
    s, t = _logits((4, 6))
    y = (t / 4.0).softmax(1)
    rows, cols = y - y.mean(1, keepdim=True), y - y.mean(0, keepdim=True)
    left = [(1e-8 / (v.pow(2).sum(d) + 1e-8)).mean()
            for v, d in ((rows, 1), (cols, 0))]
    expected = 16 * (left[0] + left[1])
    assert expected > 1e-6  # the epsilon matters at T = 4
    assert _rel(DISTLoss(tau=4.0)(t, t), expected) <= 1e-6
    # softmax ignores a per-sample shift of the logits
    shifted = s + torch.randn(4, 1, dtype=torch.float64)
    assert _rel(DISTLoss()(shifted, t), DISTLoss()(s, t)) <= 1e-12


def test_gradient_reaches_the_student_only():
    s, t = _logits((2, 5, 3, 3))
    x, y = s.clone().requires_grad_(True), t.clone().requires_grad_(True)
    DISTLoss()(x, y).backward()
    assert y.grad is None
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize('shape', [(16, 100), (2, 19, 16, 16)])
def test_bfloat16_under_autocast_gives_the_float32_loss(shape):
    s, t = _logits(shape)
    s16, t16 = s.bfloat16(), t.bfloat16()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = DISTLoss(tau=4.0)(s16, t16)
    assert loss.dtype == torch.float32
    # computed in float32 from the bfloat16 values: the float32 loss of
    # those values (1e-5), and within bfloat16's rounding of the inputs
    # (2e-2) of the unrounded float64 loss
    f32 = DISTLoss(tau=4.0)(s16.float(), t16.float())
    assert math.isclose(loss.item(), f32.item(), rel_tol=1e-5)
    assert math.isclose(
        loss.item(), reference_dist(s, t, 1., 1., 4.).item(), rel_tol=2e-2)


def test_bad_input_says_what_to_fix():
    dist = DISTLoss()
    with pytest.raises(ValueError, match='same shape'):
        dist(torch.randn(2, 3, 4, 4), torch.randn(2, 3, 8, 8))
    with pytest.raises(ValueError, match='same shape'):
        dist(torch.randn(2, 3), torch.randn(2, 4))
    with pytest.raises(ValueError, match=r'\(B, K\) or \(B, K, H, W\)'):
        dist(torch.randn(2, 3, 4), torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match='one loss per pair of logits'):
        dist([torch.randn(2, 3)], [torch.randn(2, 3)])
    with pytest.raises(ValueError, match='tau must be positive'):
        DISTLoss(tau=-1)
