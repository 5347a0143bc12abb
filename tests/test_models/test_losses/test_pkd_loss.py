"""PKDLoss against the authors' formula, written channel by channel, and
against the Pearson correlation it stands for."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmkd.models.losses import PKDLoss
from mmkd.registry import MODELS


def reference_pkd(levels_s, levels_t):
    """float64, one channel at a time over the batch and the positions:
    z = (f - mean) / (sqrt(sum (f - mean)^2 / (n - 1)) + 1e-6); the level's
    loss is sum (z_s - z_t)^2 / (B C H W) / 2; the levels summed."""
    total = 0.
    for s, t in zip(levels_s, levels_t):
        C = s.shape[1]
        level = 0.
        for c in range(C):
            zs = []
            for f in (s, t):
                v = f[:, c].flatten()
                n = v.numel()
                mean = v.sum() / n
                std = torch.sqrt(((v - mean)**2).sum() / (n - 1))
                zs.append((v - mean) / (std + 1e-6))
            level = level + ((zs[0] - zs[1])**2).sum()
        total = total + level / s.numel() / 2
    return total


def pearson_form(levels_s, levels_t):
    """The paper's view: mean over channels of (n - 1) / n * (1 - r_c),
    r_c the Pearson correlation of channel c over B * H * W (no epsilon)."""
    total = 0.
    for s, t in zip(levels_s, levels_t):
        a = s.transpose(0, 1).flatten(1)
        b = t.transpose(0, 1).flatten(1)
        n = a.shape[1]
        a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
        r = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))
        total = total + ((n - 1) / n * (1 - r)).mean()
    return total


def _levels(seed=0, shapes=((2, 3, 5, 4), (2, 3, 3, 2))):
    g = torch.Generator().manual_seed(seed)
    s = [
        torch.randn(*sh, generator=g, dtype=torch.float64) * 3 + 1
        for sh in shapes
    ]
    t = [
        torch.randn(*sh, generator=g, dtype=torch.float64) * 0.5 - 2
        for sh in shapes
    ]
    return s, t


def _rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


def test_value_and_gradient_match_the_reference():
    s, t = _levels()
    x = [v.clone().requires_grad_(True) for v in s]
    loss = MODELS.build(dict(type='PKDLoss', loss_weight=6.0))(x, t)
    x_ref = [v.clone().requires_grad_(True) for v in s]
    ref = 6.0 * reference_pkd(x_ref, t)
    assert loss.dtype == torch.float64 and loss.dim() == 0
    assert _rel(loss, ref) <= 1e-10
    loss.backward()
    ref.backward()
    for g, g_ref in zip(x, x_ref):
        assert g.grad.abs().sum() > 0
        assert _rel(g.grad, g_ref.grad) <= 1e-10


def test_is_one_minus_pearson_and_ignores_scale_and_shift():
    s, t = _levels(shapes=((2, 4, 6, 6), (2, 4, 3, 3)))
    loss = PKDLoss()(s, t)
    # the 1e-6 added to the std moves the value by about 1e-6 relative
    assert math.isclose(loss.item(), pearson_form(s, t).item(), rel_tol=1e-5)
    # per-channel affine maps of the student with a positive scale
    scale = torch.rand(1, 4, 1, 1, dtype=torch.float64) * 10 + 0.1
    shift = torch.randn(1, 4, 1, 1, dtype=torch.float64) * 5
    moved = [v * scale + shift for v in s]
    assert math.isclose(PKDLoss()(moved, t).item(), loss.item(), rel_tol=1e-5)
    assert PKDLoss()(t, t).item() == 0


def test_statistics_are_the_batchs_not_each_images():
    s, t = _levels(shapes=((2, 3, 4, 4), ))
    # shifting one image of the student changes the batch statistics
    other = s[0].clone()
    other[1] += 5.0
    assert abs(PKDLoss()(other, t[0]).item() -
               PKDLoss()(s[0], t[0]).item()) > 1e-3


def test_gradient_reaches_the_student_only():
    s, t = _levels(shapes=((2, 3, 4, 4), ))
    x = s[0].clone().requires_grad_(True)
    y = t[0].clone().requires_grad_(True)
    PKDLoss()(x, y).backward()
    assert y.grad is None
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_resize_as_the_authors_code():
    s, t = _levels(shapes=((2, 3, 4, 4), (2, 3, 2, 2)))
    t_big = [F.interpolate(v, scale_factor=2, mode='nearest') for v in t]
    loss = PKDLoss(resize='student')(s, t_big)
    up = [
        F.interpolate(v, size=w.shape[2:], mode='bilinear')
        for v, w in zip(s, t_big)
    ]
    assert _rel(loss, reference_pkd(up, t_big)) <= 1e-10
    loss = PKDLoss(resize='teacher')(s, t_big)
    down = [
        F.interpolate(w, size=v.shape[2:], mode='bilinear')
        for v, w in zip(s, t_big)
    ]
    assert _rel(loss, reference_pkd(s, down)) <= 1e-10


def test_bfloat16_under_autocast_gives_the_float32_loss():
    s, t = _levels(shapes=((2, 8, 16, 16), (2, 8, 8, 8)))
    s16 = [v.bfloat16() for v in s]
    t16 = [v.bfloat16() for v in t]
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = PKDLoss()(s16, t16)
    assert loss.dtype == torch.float32
    # computed in float32 from the bfloat16 values: the float32 loss of
    # those values (1e-5), and within bfloat16's rounding of the inputs
    # (2e-2) of the unrounded float64 loss
    f32 = PKDLoss()([v.float() for v in s16], [v.float() for v in t16])
    assert math.isclose(loss.item(), f32.item(), rel_tol=1e-5)
    assert math.isclose(loss.item(), reference_pkd(s, t).item(), rel_tol=2e-2)


def test_bad_input_says_what_to_fix():
    pkd = PKDLoss()
    with pytest.raises(
            ValueError,
            match=r'level 0: the student map is 4x4 '
            r'and the teacher map 8x8.*Tap levels of the same '
            r'stride'):
        pkd(torch.randn(2, 3, 4, 4), torch.randn(2, 3, 8, 8))
    with pytest.raises(
            ValueError,
            match=r'level 1: the student map has 3 '
            r'channels and the teacher map 5.*ConvConnector'):
        pkd([torch.randn(2, 3, 4, 4)] * 2,
            [torch.randn(2, 3, 4, 4),
             torch.randn(2, 5, 4, 4)])
    with pytest.raises(ValueError, match='got 1 student and 2 teacher levels'):
        pkd([torch.randn(2, 3, 4, 4)], [torch.randn(2, 3, 4, 4)] * 2)
    with pytest.raises(ValueError, match='standard deviation is undefined'):
        pkd(torch.randn(1, 3, 1, 1), torch.randn(1, 3, 1, 1))
    with pytest.raises(ValueError, match='resize must be'):
        PKDLoss(resize='both')
