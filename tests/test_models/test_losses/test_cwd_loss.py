"""CWDLoss against the authors' formula, written channel by channel."""
import math

import pytest
import torch

from mmkd.models.losses import CWDLoss
from mmkd.registry import MODELS


def reference_cwd(levels_s, levels_t, tau):
    """float64, one channel at a time: phi = exp(y / T) / sum exp(y / T)
    over the positions, KL(phi_t || phi_s) summed over positions and
    channels, times T^2 / (C * B); the levels summed."""
    total = 0.
    for s, t in zip(levels_s, levels_t):
        B, C = s.shape[:2]
        level = 0.
        for b in range(B):
            for c in range(C):
                e_s = torch.exp(s[b, c].flatten() / tau)
                e_t = torch.exp(t[b, c].flatten() / tau)
                p_s, p_t = e_s / e_s.sum(), e_t / e_t.sum()
                level = level + (p_t * (torch.log(p_t) - torch.log(p_s))).sum()
        total = total + level * tau**2 / (C * B)
    return total


def _levels(seed=0, shapes=((2, 3, 5, 4), (2, 3, 3, 2))):
    g = torch.Generator().manual_seed(seed)
    s = [
        torch.randn(*sh, generator=g, dtype=torch.float64) * 2 for sh in shapes
    ]
    t = [
        torch.randn(*sh, generator=g, dtype=torch.float64) * 2 for sh in shapes
    ]
    return s, t


def _rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize('tau', [1.0, 4.0])
def test_value_and_gradient_match_the_reference(tau):
    s, t = _levels()
    x = [v.clone().requires_grad_(True) for v in s]
    loss = MODELS.build(dict(type='CWDLoss', tau=tau, loss_weight=3.0))(x, t)
    x_ref = [v.clone().requires_grad_(True) for v in s]
    ref = 3.0 * reference_cwd(x_ref, t, tau)
    assert loss.dtype == torch.float64 and loss.dim() == 0
    assert _rel(loss, ref) <= 1e-10
    loss.backward()
    ref.backward()
    for g, g_ref in zip(x, x_ref):
        assert g.grad.abs().sum() > 0
        assert _rel(g.grad, g_ref.grad) <= 1e-10


def test_single_map_and_zero_for_identical_maps():
    s, t = _levels(shapes=((3, 4, 6, 6), ))
    loss = CWDLoss(tau=4.0)(s[0], t[0])
    assert _rel(loss, reference_cwd(s, t, 4.0)) <= 1e-10
    assert abs(CWDLoss()(t[0], t[0]).item()) < 1e-12
    # a constant shift per channel leaves the spatial softmax unchanged
    shifted = t[0] + torch.randn(3, 4, 1, 1, dtype=torch.float64)
    assert abs(CWDLoss()(shifted, t[0]).item()) < 1e-12


def test_gradient_reaches_the_student_only():
    s, t = _levels(shapes=((2, 3, 4, 4), ))
    x = s[0].clone().requires_grad_(True)
    y = t[0].clone().requires_grad_(True)
    CWDLoss(tau=4.0)(x, y).backward()
    assert y.grad is None
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_bfloat16_under_autocast_gives_the_float32_loss():
    s, t = _levels(shapes=((2, 8, 16, 16), (2, 8, 8, 8)))
    s16 = [v.bfloat16() for v in s]
    t16 = [v.bfloat16() for v in t]
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = CWDLoss(tau=4.0)(s16, t16)
    assert loss.dtype == torch.float32
    # computed in float32 from the bfloat16 values: the float32 loss of
    # those values (1e-5), and within bfloat16's rounding of the inputs
    # (2e-2) of the unrounded float64 loss
    f32 = CWDLoss(tau=4.0)([v.float() for v in s16], [v.float() for v in t16])
    assert math.isclose(loss.item(), f32.item(), rel_tol=1e-5)
    assert math.isclose(
        loss.item(), reference_cwd(s, t, 4.0).item(), rel_tol=2e-2)


def test_bad_input_says_what_to_fix():
    cwd = CWDLoss()
    with pytest.raises(
            ValueError,
            match=r'level 0: the student map is 4x4 '
            r'and the teacher map 8x8.*Tap levels of the same '
            r'stride'):
        cwd(torch.randn(2, 3, 4, 4), torch.randn(2, 3, 8, 8))
    with pytest.raises(
            ValueError,
            match=r'level 1: the student map has 3 '
            r'channels and the teacher map 5.*ConvConnector'):
        cwd([torch.randn(2, 3, 4, 4)] * 2,
            [torch.randn(2, 3, 4, 4),
             torch.randn(2, 5, 4, 4)])
    with pytest.raises(ValueError, match='got 2 student and 3 teacher levels'):
        cwd([torch.randn(2, 3, 4, 4)] * 2, [torch.randn(2, 3, 4, 4)] * 3)
    with pytest.raises(ValueError, match=r'needs \(B, C, H, W\)'):
        cwd(torch.randn(2, 3), torch.randn(2, 3))
    with pytest.raises(ValueError, match='tau must be positive'):
        CWDLoss(tau=0)
