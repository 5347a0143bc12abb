import math

import numpy as np
import pytest
import torch

from mmkd.models.losses import KDLoss
from mmkd.registry import MODELS


def softmax(v):
    e = np.exp(v - v.max())
    return e / e.sum()


def hand_kd(s, t, T):
    """sum_k p_t (log p_t - log p_s) * T^2, averaged over the rows."""
    s, t = s.astype(np.float64), t.astype(np.float64)
    total = 0.0
    for row_s, row_t in zip(s, t):
        p_s, p_t = softmax(row_s / T), softmax(row_t / T)
        for k in range(len(row_s)):
            total += p_t[k] * (math.log(p_t[k]) - math.log(p_s[k]))
    return total * T * T / len(s)


@pytest.mark.parametrize('tau', [1.0, 4.0])
def test_kd_matches_hand_computation(tau):
    torch.manual_seed(0)
    s, t = torch.randn(5, 7) * 3, torch.randn(5, 7) * 3
    loss = KDLoss(tau=tau)(s, t)
    assert loss.dim() == 0
    assert abs(loss.item() - hand_kd(s.numpy(), t.numpy(), tau)) < 1e-5


def test_kd_loss_weight_and_registry():
    torch.manual_seed(0)
    s, t = torch.randn(4, 6), torch.randn(4, 6)
    kd = MODELS.build(dict(type='KDLoss', tau=4.0, loss_weight=2.5))
    expected = 2.5 * hand_kd(s.numpy(), t.numpy(), 4.0)
    assert abs(kd(s, t).item() - expected) < 1e-5
    assert abs(KDLoss()(t, t).item()) < 1e-6


def test_kd_dense_logits_every_pixel_is_a_sample():
    torch.manual_seed(0)
    s, t = torch.randn(2, 5, 3, 4), torch.randn(2, 5, 3, 4)
    loss = KDLoss(tau=2.0)(s, t)
    # (B, K, H, W) -> (B*H*W, K) rows, then the same hand computation
    rows_s = s.permute(0, 2, 3, 1).reshape(-1, 5).numpy()
    rows_t = t.permute(0, 2, 3, 1).reshape(-1, 5).numpy()
    assert abs(loss.item() - hand_kd(rows_s, rows_t, 2.0)) < 1e-5


def test_kd_gradient_only_to_student():
    s = torch.randn(3, 4, requires_grad=True)
    t = torch.randn(3, 4, requires_grad=True)
    KDLoss()(s, t).backward()
    assert t.grad is None
    assert s.grad is not None and s.grad.abs().sum() > 0


def test_kd_bad_shapes():
    kd = KDLoss()
    with pytest.raises(ValueError, match='same shape'):
        kd(torch.randn(2, 3), torch.randn(2, 4))
    with pytest.raises(ValueError, match=r'\(B, K\)'):
        kd(torch.randn(2, 3, 4), torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match='tau'):
        KDLoss(tau=0)
