import math

import pytest
import torch
import torch.nn as nn

from mmkd.models.connectors.bifpn_blocks import (DepthwiseSeparableConvBlock,
                                                 FastNormalizedFusion,
                                                 MaxPool2dTFSame,
                                                 PointwiseConvBlock,
                                                 add_upsampled, batch_norm,
                                                 conv1x1, scaled_pointwise,
                                                 separable)


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


@pytest.mark.parametrize('hw', [(8, 8), (7, 7), (9, 6), (5, 12), (1, 3),
                                (2, 2), (4, 1)])
def test_tf_same_maxpool_nonnegative_fast_path(hw):
    """For x >= 0 the implicit-padding pool equals the zero-padded one, in
    value and in the gradient that reaches the input through the ReLU."""
    torch.manual_seed(0)
    pool = MaxPool2dTFSame(3, 2)
    z = torch.randn(2, 3, *hw, dtype=torch.float64)  # half of it ReLU'd to 0
    za, zb = z.clone().requires_grad_(), z.clone().requires_grad_()
    a = pool.forward_nonnegative(torch.relu(za))
    b = pool(torch.relu(zb))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(a,
                               naive_tf_same_maxpool(torch.relu(z)).double())
    g = torch.randn(a.shape, dtype=torch.float64)
    (a * g).sum().backward()
    (b * g).sum().backward()
    torch.testing.assert_close(za.grad, zb.grad, rtol=0, atol=0)
    # channels-last input keeps its layout
    cl = torch.relu(torch.randn(1, 4, 8, 8)).contiguous(
        memory_format=torch.channels_last)
    assert pool.forward_nonnegative(cl).is_contiguous(
        memory_format=torch.channels_last)


@pytest.mark.parametrize('channels_last', [False, True])
def test_add_upsampled(channels_last):
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    big = torch.randn(2, 3, 6, 8, dtype=torch.float64).contiguous(
        memory_format=fmt).requires_grad_()
    small = torch.randn(2, 3, 3, 4, dtype=torch.float64).contiguous(
        memory_format=fmt).requires_grad_()
    scale = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    up = nn.functional.interpolate(small, scale_factor=2, mode='nearest')
    for s in (None, scale):
        out = add_upsampled(big, small, s)
        ref = (big if s is None else s * big) + up
        torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
        assert out.is_contiguous(memory_format=fmt)
        g = torch.randn(out.shape, dtype=torch.float64)
        grads = torch.autograd.grad((out * g).sum(), [big, small])
        ref_grads = torch.autograd.grad((ref * g).sum(), [big, small])
        for a, b in zip(grads, ref_grads):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match='not twice'):
        add_upsampled(big, small[:, :, :2])


@pytest.mark.parametrize('momentum', [0.1, None])
def test_batch_norm_repeat_equals_bn_of_upsampled_map(momentum):
    """batch_norm(x, repeat=4), then upsampled, is bn(upsample(x)), running
    statistics included; with other weight/bias it is F.batch_norm with
    them."""
    torch.manual_seed(0)
    bn_a = nn.BatchNorm2d(3, momentum=momentum).double()
    bn_b = nn.BatchNorm2d(3, momentum=momentum).double()
    bn_b.load_state_dict(bn_a.state_dict())
    up = nn.Upsample(scale_factor=2, mode='nearest')
    for _ in range(3):
        x = torch.randn(2, 3, 3, 2, dtype=torch.float64)
        a = up(batch_norm(bn_a, x, bn_a.weight, bn_a.bias, repeat=4))
        torch.testing.assert_close(a, bn_b(up(x)), rtol=1e-12, atol=1e-12)
    for name in ('running_mean', 'running_var', 'num_batches_tracked'):
        torch.testing.assert_close(
            getattr(bn_a, name), getattr(bn_b, name), rtol=1e-12, atol=1e-12)
    bn_a.eval()
    w, b = torch.rand(3).double(), torch.randn(3).double()
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(
        batch_norm(bn_a, x, w, b),
        nn.functional.batch_norm(x, bn_a.running_mean, bn_a.running_var, w,
                                 b, False, 0.0, bn_a.eps))


def test_scaled_pointwise_folds_the_scale():
    """scale * block(x) with the scale in the BN affine: same values and
    gradients (scale, conv, BN), also for a zero scale; a block with
    another norm layer takes the module path."""
    torch.manual_seed(0)
    for scale_value in (0.37, 0.0):
        blk_a = PointwiseConvBlock(3, 4).double()
        blk_b = PointwiseConvBlock(3, 4).double()
        blk_b.load_state_dict(blk_a.state_dict())
        with torch.no_grad():
            blk_a.bn.weight.uniform_(-1, 1)  # negative gammas too
            blk_a.bn.bias.uniform_(-1, 1)
            blk_b.load_state_dict(blk_a.state_dict())
        x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
        sa = torch.tensor(scale_value, dtype=torch.float64,
                          requires_grad=True)
        sb = sa.detach().clone().requires_grad_()
        out_a = scaled_pointwise(blk_a, x, sa)
        out_b = sb * blk_b(x)
        torch.testing.assert_close(out_a, out_b, rtol=1e-12, atol=1e-12)
        g = torch.randn(out_a.shape, dtype=torch.float64)
        (out_a * g).sum().backward()
        (out_b * g).sum().backward()
        if scale_value > 0:  # at 0 the ReLU'd fusion weight has no gradient
            torch.testing.assert_close(sa.grad, sb.grad)
        for (name, pa), pb in zip(blk_a.named_parameters(),
                                  blk_b.parameters()):
            torch.testing.assert_close(pa.grad, pb.grad, rtol=1e-12,
                                       atol=1e-12, msg=name)
        torch.testing.assert_close(blk_a.bn.running_var, blk_b.bn.running_var)
    gn = PointwiseConvBlock(4, 4, norm_cfg=dict(type='GN', num_groups=2))
    x = torch.randn(2, 4, 3, 3)
    torch.testing.assert_close(
        scaled_pointwise(gn, x, torch.tensor(0.5)), 0.5 * gn(x))


@pytest.mark.parametrize('channels_last', [False, True])
def test_conv1x1_and_separable_equal_the_modules(channels_last):
    """The matrix-product 1x1 conv and the in-place-ReLU separable block
    compute the modules' function: values, input and weight gradients
    (float64), channels-last output for channels-last input."""
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    conv = nn.Conv2d(4, 6, 1).double()  # with a bias
    blk = DepthwiseSeparableConvBlock(4, 6, depth=2).double()
    for module, fn in ((conv, conv1x1), (blk, separable)):
        x = torch.randn(2, 4, 5, 3, dtype=torch.float64).contiguous(
            memory_format=fmt)
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        out = fn(module, xa)
        ref = module(xb)
        torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
        assert out.is_contiguous(memory_format=fmt)
        g = torch.randn(out.shape, dtype=torch.float64)
        params = list(module.parameters())
        ga = torch.autograd.grad((out * g).sum(), [xa] + params)
        gb = torch.autograd.grad((ref * g).sum(), [xb] + params)
        for a, b in zip(ga, gb):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    strided = nn.Conv2d(4, 6, 1, stride=2).double()  # the module path
    x = torch.randn(1, 4, 6, 6, dtype=torch.float64)
    torch.testing.assert_close(conv1x1(strided, x), strided(x))
