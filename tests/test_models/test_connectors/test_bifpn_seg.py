"""BiFPNSeg: the FRSKD segmentation self-teacher.

See docs/en/methods.md#frskd-segmentation.
"""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmkd.models.connectors import BiFPNSeg
from mmkd.registry import MODELS
# shared with the BiFPNc tests (this folder is on sys.path)
from test_bifpnc import randomize_bn  # noqa: E402

# Non-power-of-two sizes: the resizes must go to the other level's size.
SIZES = [(12, 10), (6, 5), (3, 3)]


def feats(channels, sizes=SIZES, batch=2, seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randn(batch, c, h, w, generator=g).requires_grad_(requires_grad)
        for c, (h, w) in zip(channels, sizes)
    ]


def randomize(module, seed=0):
    """Random BN statistics / affine, eval mode."""
    randomize_bn(module, seed)
    module.eval()


def node(seq, x):
    """The official node written out: per-channel scale + shift (1x1
    depthwise conv with bias), eval-mode BN, ReLU."""
    conv, bn = seq[0], seq[1]
    y = x * conv.weight.view(1, -1, 1, 1) + conv.bias.view(1, -1, 1, 1)
    y = (y - bn.running_mean.view(
        1, -1, 1, 1)) / torch.sqrt(bn.running_var.view(1, -1, 1, 1) + bn.eps)
    y = y * bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1)
    return F.relu(y)


def naive_layer(layer, xs):
    """``BiFPNSeg.forward`` of the official code for n levels."""
    n = len(xs)
    up = {n - 1: node(layer.up_nodes[n - 1], xs[n - 1])}
    for i in range(n - 2, -1, -1):
        big = F.interpolate(
            up[i + 1],
            size=xs[i].shape[-2:],
            mode='bilinear',
            align_corners=False)
        up[i] = node(layer.up_nodes[i], xs[i] + big)
    if layer.down_nodes is None:
        return [up[i] for i in range(n)]
    out = {0: up[0]}
    for i in range(1, n):
        small = F.interpolate(
            out[i - 1], size=up[i].shape[-2:], mode='nearest')
        out[i] = node(layer.down_nodes[i - 1], xs[i] + up[i] + small)
    return [out[i] for i in range(n)]


def test_matches_official_two_layer_self_teacher():
    m = MODELS.build(
        dict(
            type='BiFPNSeg',
            in_channels=[8, 8, 8],
            num_classes=5,
            head_channels=6))
    randomize(m)
    assert len(m.layers) == 2
    assert m.layers[0].down_nodes is not None  # BiFPNSeg(outc)
    assert m.layers[1].down_nodes is None  # BiFPNSeg(outc, is_last=True)
    assert all(isinstance(lat, nn.Identity) for lat in m.laterals)
    xs = feats([8, 8, 8])
    with torch.no_grad():
        out = m(xs)
        ref = naive_layer(m.layers[1], naive_layer(m.layers[0], xs))
        conv1, bn, _, conv2 = m.classifier
        h = F.conv2d(ref[0], conv1.weight, conv1.bias, padding=1)
        h = F.relu(
            F.batch_norm(h, bn.running_mean, bn.running_var, bn.weight,
                         bn.bias, False, 0., bn.eps))
        logits = F.conv2d(h, conv2.weight, conv2.bias, padding=1)
    for got, want, size in zip(out['feats'], ref, SIZES):
        assert got.shape == (2, 8) + size
        torch.testing.assert_close(got, want)
    torch.testing.assert_close(out['logits'], logits)
    assert out['logits'].shape == (2, 5) + SIZES[0]


def test_single_layer_is_top_down_only():
    m = BiFPNSeg([4, 4, 4], num_classes=3, num_layers=1)
    randomize(m)
    xs = feats([4, 4, 4])
    with torch.no_grad():
        out = m(xs)['feats']
    for got, want in zip(out, naive_layer(m.layers[0], xs)):
        torch.testing.assert_close(got, want)


def test_out_sizes_resize_logits_bilinearly():
    m = BiFPNSeg([4, 4], num_classes=3, num_layers=2)
    randomize(m)
    xs = feats([4, 4], sizes=[(8, 8), (4, 4)])
    with torch.no_grad():
        plain = m(xs)['logits']
        resized = m(xs, out_sizes=(16, 12))['logits']
        as_list = m(xs, out_sizes=[(16, 12)])['logits']
    assert plain.shape == (2, 3, 8, 8)
    torch.testing.assert_close(
        resized,
        F.interpolate(
            plain, size=(16, 12), mode='bilinear', align_corners=False))
    torch.testing.assert_close(as_list, resized)


def test_lateral_projection_only_where_width_differs():
    m = BiFPNSeg([8, 16, 32], num_classes=3, num_channels=8)
    assert isinstance(m.laterals[0], nn.Identity)
    assert m.laterals[1].conv.in_channels == 16
    assert m.laterals[2].conv.out_channels == 8
    out = m(feats([8, 16, 32]))
    assert [f.shape[1] for f in out['feats']] == [8, 8, 8]


def test_student_features_receive_the_self_teacher_gradient():
    m = BiFPNSeg([4, 4, 4], num_classes=3)
    xs = feats([4, 4, 4], requires_grad=True)
    out = m(xs)
    F.cross_entropy(out['logits'], torch.zeros(2, *SIZES[0],
                                               dtype=torch.long)).backward()
    assert all(x.grad is not None and x.grad.abs().sum() > 0 for x in xs)


@pytest.mark.parametrize('bad,match', [
    (lambda: feats([4, 4]), 'expects 3 levels'),
    (lambda: feats([4, 5, 4]), 'level 1 has 5 channels'),
    (lambda: torch.zeros(1, 4, 4, 4), 'list of 3 tensors'),
])
def test_bad_inputs_raise(bad, match):
    m = BiFPNSeg([4, 4, 4], num_classes=3)
    with pytest.raises(ValueError, match=match):
        m(bad())


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match='num_layers'):
        BiFPNSeg([4, 4], num_classes=3, num_layers=0)
    with pytest.raises(ValueError, match='in_channels'):
        BiFPNSeg([], num_classes=3)
