"""DKDLoss against an independent float64 computation of the authors'
formula (binary TCKD + NCKD with the ground-truth class masked by a large
negative logit before the NCKD softmax)."""
import math

import numpy as np
import pytest
import torch

from mmkd.models.losses import DKDLoss, KDLoss
from mmkd.registry import MODELS


def _softmax(v):
    e = np.exp(v - v.max())
    return e / e.sum()


def _kl(p, q):
    """sum_k p_k (log p_k - log q_k); terms with p_k == 0 are 0."""
    return sum(pk * (math.log(pk) - math.log(qk)) for pk, qk in zip(p, q)
               if pk > 0)


def hand_dkd(s, t, gt, alpha, beta, T):
    """Row by row in float64: TCKD on [p_g, 1 - p_g] from the full softmax,
    NCKD on the softmax of the logits with 1000 taken off the gt class."""
    s, t = s.astype(np.float64), t.astype(np.float64)
    tckd = nckd = 0.0
    for row_s, row_t, g in zip(s, t, gt):
        p_s, p_t = _softmax(row_s / T), _softmax(row_t / T)
        b_s = [p_s[g], sum(p_s[k] for k in range(len(p_s)) if k != g)]
        b_t = [p_t[g], sum(p_t[k] for k in range(len(p_t)) if k != g)]
        tckd += _kl(b_t, b_s)
        mask = np.zeros_like(row_s)
        mask[g] = 1000.0
        q_s, q_t = _softmax(row_s / T - mask), _softmax(row_t / T - mask)
        nckd += _kl(q_t, q_s)
    n = len(s)
    return (alpha * tckd + beta * nckd) * T * T / n


def _logits(b=6, k=10, scale=3.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(b, k, generator=g) * scale
    t = torch.randn(b, k, generator=g) * scale
    gt = torch.randint(0, k, (b, ), generator=g)
    return s, t, gt


@pytest.mark.parametrize('alpha, beta, tau', [(1.0, 8.0, 4.0), (0.5, 2.0, 1.0),
                                              (1.0, 0.0, 2.0),
                                              (0.0, 1.0, 2.0)])
def test_dkd_matches_hand_computation(alpha, beta, tau):
    s, t, gt = _logits()
    loss = DKDLoss(alpha=alpha, beta=beta, tau=tau)(s, t, gt)
    expected = hand_dkd(s.numpy(), t.numpy(), gt.numpy(), alpha, beta, tau)
    assert loss.dim() == 0
    assert loss.item() == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_dkd_registry_defaults_and_loss_weight():
    s, t, gt = _logits(seed=1)
    dkd = MODELS.build(dict(type='DKDLoss', loss_weight=0.5))
    # the authors' CIFAR-100 defaults: alpha 1, beta 8, T 4
    assert (dkd.alpha, dkd.beta, dkd.tau) == (1.0, 8.0, 4.0)
    expected = 0.5 * hand_dkd(s.numpy(), t.numpy(), gt.numpy(), 1., 8., 4.)
    assert dkd(s, t, gt).item() == pytest.approx(expected, rel=1e-5)
    assert abs(DKDLoss()(t, t, gt).item()) < 1e-6


def test_dkd_decomposes_kd():
    """KD = TCKD + (1 - p_g^t) * NCKD for one sample (T = tau): with beta
    set to the teacher's non-target mass, DKD equals Hinton's KD."""
    s, t, gt = _logits(b=1, k=7, seed=2)
    tau = 3.0
    p_t = torch.softmax(t / tau, dim=1)[0]
    beta = 1.0 - p_t[gt[0]].item()
    dkd = DKDLoss(alpha=1.0, beta=beta, tau=tau)(s, t, gt)
    kd = KDLoss(tau=tau)(s, t)
    torch.testing.assert_close(dkd, kd, rtol=1e-5, atol=1e-6)


def test_dkd_finite_when_the_gt_probability_underflows():
    """The authors' log(sum of probabilities) is -inf here in float32;
    the log-space binary probabilities stay finite and exact."""
    s, t, gt = _logits(b=3, k=5, scale=1.0, seed=3)
    s[torch.arange(3), gt] = -150.0  # p_g of the student ~ e^-150
    loss = DKDLoss(tau=1.0)(s, t, gt)
    assert torch.isfinite(loss)
    expected = hand_dkd(s.numpy(), t.numpy(), gt.numpy(), 1.0, 8.0, 1.0)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_dkd_gradient_reaches_the_student_only():
    s, t, gt = _logits(seed=4)
    s = s.double().requires_grad_()
    t = t.double().requires_grad_()
    DKDLoss()(s, t, gt).backward()
    assert t.grad is None
    assert s.grad is not None and s.grad.abs().sum() > 0
    # the analytic gradient is the numerical one (float64)
    assert torch.autograd.gradcheck(
        lambda x: DKDLoss(alpha=1.0, beta=8.0, tau=4.0)(x, t.detach(), gt),
        (s.detach().clone().requires_grad_(), ))


def test_dkd_bad_input_raises():
    s, t, gt = _logits(b=4, k=6)
    dkd = DKDLoss()
    with pytest.raises(ValueError, match="gt='gt_label'"):
        dkd(s, t)
    with pytest.raises(ValueError, match='same shape'):
        dkd(s, t[:, :5], gt)
    with pytest.raises(ValueError, match=r'\(B, K\)'):
        dkd(s[..., None, None], t[..., None, None], gt)
    with pytest.raises(ValueError, match=r'shape \(4,\)'):
        dkd(s, t, gt[:3])
    with pytest.raises(ValueError, match='soft targets'):
        dkd(s, t, torch.softmax(s, dim=1))  # Mixup/CutMix gt_score
    with pytest.raises(ValueError, match=r'\[0, 6\)'):
        dkd(s, t, torch.tensor([0, 1, 2, 6]))
    with pytest.raises(ValueError, match='integer'):
        dkd(s, t, gt.float())
    with pytest.raises(ValueError, match='tau must be positive'):
        DKDLoss(tau=0)
    with pytest.raises(ValueError, match='alpha and beta'):
        DKDLoss(beta=-1)
