import math

import pytest
import torch

from mmkd.models.losses import ATLoss
from mmkd.registry import MODELS


def naive_at(fs_list, ft_list, p=2):
    """Per sample: a[hw] = mean_c f[c, hw]^p, divided by its L2 norm;
    loss = sum over (b, hw) of (a_s - a_t)^2 / (B*H*W), summed over stages."""
    total = 0.0
    for fs, ft in zip(fs_list, ft_list):
        B, _, H, W = fs.shape
        stage = 0.0
        for b in range(B):
            maps = []
            for f in (fs[b], ft[b]):
                a = [float((f[:, h, w]**p).mean()) for h in range(H)
                     for w in range(W)]
                n = max(math.sqrt(sum(v * v for v in a)), 1e-12)
                maps.append([v / n for v in a])
            stage += sum((x - y)**2 for x, y in zip(*maps))
        total += stage / (B * H * W)
    return total


def test_at_matches_naive_loop_multi_stage():
    torch.manual_seed(0)
    fs = [torch.randn(2, 3, 4, 4), torch.randn(2, 5, 2, 3)]
    ft = [torch.randn(2, 6, 4, 4), torch.randn(2, 2, 2, 3)]  # channels differ
    loss = MODELS.build(dict(type='ATLoss'))(fs, ft)
    assert loss.dim() == 0
    assert abs(loss.item() - naive_at(fs, ft)) < 1e-6


def test_at_single_tensor_and_weight():
    torch.manual_seed(0)
    fs, ft = torch.randn(3, 4, 5, 5), torch.randn(3, 2, 5, 5)
    loss = ATLoss(loss_weight=100.0)(fs, ft)
    assert abs(loss.item() - 100.0 * naive_at([fs], [ft])) < 1e-4
    assert ATLoss()(fs, fs * 3).item() < 1e-10  # scale-invariant maps


def test_at_gradient_only_to_student():
    fs = [torch.randn(2, 3, 4, 4, requires_grad=True)]
    ft = [torch.randn(2, 3, 4, 4, requires_grad=True)]
    ATLoss()(fs, ft).backward()
    assert ft[0].grad is None
    assert fs[0].grad is not None and fs[0].grad.abs().sum() > 0


def test_at_bad_input():
    at = ATLoss()
    with pytest.raises(ValueError, match=r'stage 1 .*\(2, 3, 4, 4\).*'
                       r'\(2, 3, 2, 2\)'):
        at([torch.randn(2, 3, 8, 8), torch.randn(2, 3, 4, 4)],
           [torch.randn(2, 5, 8, 8), torch.randn(2, 3, 2, 2)])
    with pytest.raises(ValueError, match='2 student stages and 1 target'):
        at([torch.randn(1, 1, 2, 2)] * 2, [torch.randn(1, 1, 2, 2)])
    with pytest.raises(ValueError, match='stage 0 batch'):
        at(torch.randn(2, 3, 4, 4), torch.randn(3, 3, 4, 4))
    with pytest.raises(ValueError, match=r'\(B, C, H, W\)'):
        at(torch.randn(2, 16), torch.randn(2, 16))
    with pytest.raises(ValueError, match='non-empty'):
        at([], [])
