import math

import pytest
import torch
import torch.nn as nn

from mmkd.models.connectors.bifpn_blocks import (DepthwiseSeparableConvBlock,
                                                 FastNormalizedFusion,
                                                 MaxPool2dTFSame,
                                                 PointwiseConvBlock)


def naive_tf_same_maxpool(x, k=3, s=2):
    """TF 'SAME' max-pool written from the definition, with plain loops.

    Output size ceil(n / s); total padding max((out - 1) * s + k - n, 0),
    the smaller half before; FRSKD pads with zeros.
    """
    b, c, h, w = x.shape
    oh, ow = math.ceil(h / s), math.ceil(w / s)
    ph = max((oh - 1) * s + k - h, 0)
    pw = max((ow - 1) * s + k - w, 0)
    canvas = torch.zeros(b, c, h + ph, w + pw)
    canvas[:, :, ph // 2:ph // 2 + h, pw // 2:pw // 2 + w] = x
    out = torch.empty(b, c, oh, ow)
    for i in range(oh):
        for j in range(ow):
            win = canvas[:, :, i * s:i * s + k, j * s:j * s + k]
            out[:, :, i, j] = win.amax(dim=(2, 3))
    return out


@pytest.mark.parametrize('hw', [(8, 8), (7, 7), (9, 6), (5, 12), (1, 3),
                                (2, 2)])
def test_tf_same_maxpool_sizes_and_values(hw):
    torch.manual_seed(0)
    x = torch.randn(2, 3, *hw)
    pool = MaxPool2dTFSame(3, 2)
    out = pool(x)
    assert out.shape[-2:] == (math.ceil(hw[0] / 2), math.ceil(hw[1] / 2))
    torch.testing.assert_close(out, naive_tf_same_maxpool(x))


def test_tf_same_maxpool_padding_values():
    pool = MaxPool2dTFSame(3, 2)
    # even side: total 1 -> (0 before, 1 after); odd side: total 2 -> (1, 1)
    assert pool.pad_sizes(8, 8) == (0, 1, 0, 1)
    assert pool.pad_sizes(7, 7) == (1, 1, 1, 1)
    # (h, w) = (7, 8): left/right come from w, top/bottom from h
    assert pool.pad_sizes(7, 8) == (0, 1, 1, 1)
    assert pool.pad_sizes(8, 7) == (1, 1, 0, 1)
    # zeros, not -inf: a negative input gives 0 wherever a window touches
    # the padding (as the official code; inputs are post-ReLU there)
    out = pool(-torch.ones(1, 1, 4, 4))
    assert out[0, 0, -1, -1] == 0
    assert out[0, 0, 0, 0] == -1


def test_pointwise_block_structure_and_activation():
    blk = PointwiseConvBlock(3, 5)
    assert isinstance(blk.conv, nn.Conv2d) and blk.conv.kernel_size == (1, 1)
    assert blk.conv.bias is None
    assert isinstance(blk.bn, nn.BatchNorm2d) and isinstance(blk.act, nn.ReLU)
    out = blk(torch.randn(2, 3, 4, 4))
    assert out.shape == (2, 5, 4, 4) and out.min() >= 0


def test_depthwise_separable_block_structure():
    blk = DepthwiseSeparableConvBlock(4, 6, depth=3)
    assert len(blk) == 3
    first = blk[0]
    assert not hasattr(first, 'act')
    assert first.dw.groups == 4 and first.dw.kernel_size == (3, 3)
    assert first.dw.padding == (1, 1) and first.dw.bias is None
    assert first.pw.in_channels == 4 and first.pw.out_channels == 6
    assert first.pw.bias is None
    for unit in list(blk)[1:]:
        assert isinstance(unit.act, nn.ReLU)
        assert unit.dw.groups == 6 and unit.pw.in_channels == 6
    # every unit ends with BN, the block has no final activation
    assert all(isinstance(list(u.children())[-1], nn.BatchNorm2d) for u in blk)
    out = blk(torch.randn(2, 4, 5, 5))
    assert out.shape == (2, 6, 5, 5) and out.min() < 0  # pre-activation


def test_depthwise_separable_block_matches_manual():
    torch.manual_seed(0)
    blk = DepthwiseSeparableConvBlock(3, 4, depth=2).eval()
    x = torch.randn(2, 3, 5, 5)
    f = nn.functional
    u0, u1 = blk[0], blk[1]
    y = u0.bn(f.conv2d(f.conv2d(x, u0.dw.weight, padding=1, groups=3),
                       u0.pw.weight))
    y = u1.bn(f.conv2d(f.conv2d(f.relu(y), u1.dw.weight, padding=1,
                                groups=4), u1.pw.weight))
    torch.testing.assert_close(blk(x), y)


def test_fast_normalized_fusion():
    fuse = FastNormalizedFusion(3, eps=1e-6)
    # initial weights: ones -> 1 / (3 + eps)
    torch.testing.assert_close(fuse.normalized_weights(),
                               torch.full((3, ), 1 / (3 + 1e-6)))
    with torch.no_grad():
        fuse.weight.copy_(torch.tensor([2.0, -1.0, 0.5]))
    xs = [torch.randn(2, 3, 4, 4) for _ in range(3)]
    # relu on the weights: the negative one is dropped
    expected = (2.0 * xs[0] + 0.5 * xs[2]) / (2.5 + 1e-6)
    torch.testing.assert_close(fuse(xs), expected)
    with pytest.raises(ValueError, match='expected 3 inputs'):
        fuse(xs[:2])
