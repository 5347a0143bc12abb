import math

import pytest
import torch

from mmkd.models.connectors import ABF
from mmkd.registry import MODELS


def _nearest(y, size):
    """Nearest resize written out: source index floor(dst * in / out)."""
    h_in, w_in = y.shape[-2:]
    h, w = size
    rows = torch.floor(torch.arange(h) * (h_in / h)).long()
    cols = torch.floor(torch.arange(w) * (w_in / w)).long()
    return y[:, :, rows][:, :, :, cols]


def test_fused_shapes_non_square():
    torch.manual_seed(0)
    abf = ABF(6, 4, 8, fuse=True)
    x = torch.randn(2, 6, 5, 7)
    res_in = torch.randn(2, 4, 3, 4)
    out, res = abf(x, res_in)
    assert out.shape == (2, 8, 5, 7)
    assert res.shape == (2, 4, 5, 7)


def test_fusion_is_two_sigmoid_gates_on_nearest_residual():
    torch.manual_seed(0)
    abf = ABF(6, 4, 8, fuse=True)
    x = torch.randn(2, 6, 5, 7)
    res_in = torch.randn(2, 4, 3, 4)
    out, res = abf(x, res_in)

    xm = abf.conv1(x)
    y = _nearest(res_in, (5, 7))
    logits = abf.att_conv[0](torch.cat([xm, y], dim=1))
    assert logits.shape == (2, 2, 5, 7)
    fused = xm * torch.sigmoid(logits[:, 0:1]) + \
        y * torch.sigmoid(logits[:, 1:2])
    assert torch.allclose(res, fused, atol=1e-6)
    assert torch.allclose(out, abf.conv2(fused), atol=1e-5)
    # the two gates are independent (not a softmax): here they differ from
    # a softmax of the two logits
    soft = torch.softmax(logits, dim=1)
    fused_soft = xm * soft[:, 0:1] + y * soft[:, 1:2]
    assert not torch.allclose(res, fused_soft, atol=1e-3)


def test_residual_of_same_size_is_not_resized():
    torch.manual_seed(0)
    abf = ABF(3, 4, 5, fuse=True)
    x = torch.randn(2, 3, 4, 6)
    y = torch.randn(2, 4, 4, 6)
    _, res = abf(x, y)
    xm = abf.conv1(x)
    z = torch.sigmoid(abf.att_conv[0](torch.cat([xm, y], 1)))
    assert torch.allclose(res, xm * z[:, :1] + y * z[:, 1:], atol=1e-6)


def test_no_fusion_for_deepest_level():
    torch.manual_seed(0)
    abf = ABF(6, 4, 8, fuse=False)
    assert abf.att_conv is None
    x = torch.randn(2, 6, 1, 1)
    out, res = abf(x)
    assert torch.allclose(res, abf.conv1(x))
    assert torch.allclose(out, abf.conv2(abf.conv1(x)))
    assert out.shape == (2, 8, 1, 1)
    with pytest.raises(ValueError, match='no fusion'):
        abf(x, torch.randn(2, 4, 1, 1))


def test_output_resize_to_teacher_size():
    torch.manual_seed(0)
    abf = ABF(3, 4, 5, fuse=False)
    x = torch.randn(2, 3, 4, 3)
    out, res = abf(x, out_size=(8, 6))
    assert out.shape == (2, 5, 8, 6)
    assert res.shape == (2, 4, 8, 6)
    # nearest x2: each pixel of the mid map repeated 2x2
    expected = abf.conv1(x).repeat_interleave(2, dim=2).repeat_interleave(
        2, dim=3)
    assert torch.allclose(res, expected, atol=1e-6)
    assert torch.allclose(out, abf.conv2(expected), atol=1e-5)
    # same size: unchanged
    out2, res2 = abf(x, out_size=(4, 3))
    assert torch.allclose(res2, abf.conv1(x), atol=1e-6)
    # int size means square
    out3, _ = abf(torch.randn(2, 3, 2, 2), out_size=4)
    assert out3.shape == (2, 5, 4, 4)


def test_fused_then_resized_residual():
    torch.manual_seed(0)
    abf = ABF(3, 4, 5, fuse=True)
    x = torch.randn(2, 3, 2, 2)
    y = torch.randn(2, 4, 1, 1)
    out, res = abf(x, y, out_size=(4, 4))
    xm = abf.conv1(x)
    yy = y.expand(-1, -1, 2, 2)
    z = torch.sigmoid(abf.att_conv[0](torch.cat([xm, yy], 1)))
    fused = xm * z[:, :1] + yy * z[:, 1:]
    assert torch.allclose(res, _nearest(fused, (4, 4)), atol=1e-6)
    assert out.shape == (2, 5, 4, 4)


def test_authors_init():
    torch.manual_seed(0)
    abf = ABF(16, 32, 8, fuse=True)
    for conv in (abf.conv1[0], abf.conv2[0]):
        fan_in = conv.weight[0].numel()
        bound = math.sqrt(3.0 / fan_in)  # kaiming_uniform_(a=1)
        w = conv.weight.abs().max().item()
        assert w <= bound
        # PyTorch's default bound is 1/sqrt(fan_in), clearly smaller
        assert w > 1.0 / math.sqrt(fan_in)
        assert conv.bias is None
    assert abf.att_conv[0].bias is not None
    assert torch.all(abf.conv1[1].weight == 1)


def test_errors():
    abf = ABF(3, 4, 5, fuse=True)
    with pytest.raises(ValueError, match='none was given'):
        abf(torch.randn(2, 3, 4, 4))
    with pytest.raises(ValueError, match='residual must be'):
        abf(torch.randn(2, 3, 4, 4), torch.randn(2, 5, 2, 2))
    with pytest.raises(ValueError, match=r'\(N, 3, H, W\)'):
        abf(torch.randn(2, 4, 4, 4), torch.randn(2, 4, 2, 2))


def test_gradients_reach_input_and_residual():
    abf = ABF(3, 4, 5, fuse=True)
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    y = torch.randn(2, 4, 2, 2, requires_grad=True)
    out, _ = abf(x, y)
    out.sum().backward()
    assert x.grad.abs().sum() > 0 and y.grad.abs().sum() > 0
    assert abf.att_conv[0].weight.grad.abs().sum() > 0


def test_registry_build():
    abf = MODELS.build(
        dict(type='ABF', in_channels=3, mid_channels=4, out_channels=5,
             fuse=False))
    assert isinstance(abf, ABF)


def test_channels_last_fusion_equals_concatenated_gate():
    """On channels-last maps the fusion runs without the concatenation
    (``gated_sum``): values and gradients (inputs, residual, every
    parameter) as the official ``att_conv(cat[x, y])`` formula, float64."""
    torch.manual_seed(0)
    abf = ABF(6, 5, 7, fuse=True).double()
    torch.nn.init.normal_(abf.att_conv[0].bias)
    cl = torch.channels_last
    x = torch.randn(3, 6, 4, 6, dtype=torch.float64).contiguous(
        memory_format=cl).requires_grad_()
    y = torch.randn(3, 5, 2, 3, dtype=torch.float64).contiguous(
        memory_format=cl).requires_grad_()
    params = [x, y] + list(abf.parameters())

    def reference():
        xm = abf.conv1(x)
        yy = _nearest(y, (4, 6))
        z = torch.sigmoid(abf.att_conv[0](torch.cat([xm, yy], 1)))
        fused = xm * z[:, :1] + yy * z[:, 1:]
        return abf.conv2(fused), fused

    results = []
    for run in (lambda: abf(x, y), reference):
        out, res = run()
        weights = torch.linspace(-1, 1, out.numel(), dtype=out.dtype)
        loss = (out * weights.view_as(out)).sum() + (res**3).sum()
        results.append((out, res, torch.autograd.grad(loss, params)))
    (out, res, grads), (ref_out, ref_res, ref_grads) = results
    assert type(res.grad_fn).__name__ == '_GatedSumBackward'
    assert res.is_contiguous(memory_format=cl)
    for a, b in [(out, ref_out), (res, ref_res)] + list(zip(grads,
                                                            ref_grads)):
        assert (a - b).abs().max() <= 1e-10 * b.abs().max()
