import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmkd.models.backbones import WideResNet
from mmkd.registry import MODELS


def count_params(depth, k, num_classes, style):
    """Parameter count of the authors' WRN, from the architecture."""
    n = (depth - 4) // 6
    ch = [16, 16 * k, 32 * k, 64 * k]
    total = 3 * 16 * 9  # stem conv
    for s in range(3):
        for j in range(n):
            cin = ch[s] if j == 0 else ch[s + 1]
            cout = ch[s + 1]
            total += 9 * cin * cout + 9 * cout * cout + 2 * cout  # convs, bn2
            total += 2 * cin if style == 'standard' else 0  # bn1
            total += cin * cout if cin != cout else 0  # 1x1 shortcut
        total += 2 * cout if style == 'frskd' else 0  # block{s}bn
    total += 2 * ch[3] if style == 'standard' else 0  # final bn1
    return total + ch[3] * num_classes + num_classes  # FC of the head


def n_params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize('style', ['standard', 'frskd'])
def test_stage_shapes(style):
    m = MODELS.build(
        dict(type='WideResNet', depth=16, widen_factor=2, style=style,
             out_indices=(0, 1, 2)))
    with torch.no_grad():
        outs = m(torch.randn(1, 3, 32, 32))
    assert isinstance(outs, tuple)
    assert [tuple(o.shape[1:]) for o in outs] == [(32, 32, 32), (64, 16, 16),
                                                  (128, 8, 8)]
    assert outs[-1].min() >= 0  # last stage: after the final BN-ReLU
    assert len(WideResNet(depth=16)(torch.randn(1, 3, 8, 8))) == 1


@pytest.mark.parametrize('depth,k,approx', [(16, 2, 0.70e6), (40, 2, 2.2e6),
                                            (40, 1, 0.57e6)])
def test_param_counts(depth, k, approx):
    fc = 64 * k * 100 + 100
    for style in ('standard', 'frskd'):
        m = WideResNet(depth=depth, widen_factor=k, style=style)
        assert n_params(m) + fc == count_params(depth, k, 100, style)
    # published sizes (WRN-16-2 ~0.70M, WRN-40-2 ~2.2M, WRN-40-1 ~0.57M)
    total = n_params(WideResNet(depth=depth, widen_factor=k)) + fc
    assert abs(total - approx) / approx < 0.03


def test_authors_init():
    torch.manual_seed(0)
    m = WideResNet(depth=16, widen_factor=2)
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            nn.init.normal_(mod.weight)
    m.init_weights()
    w = m.block3.layer[1].conv2.weight  # 128 x 128 x 3 x 3
    expected_std = math.sqrt(2.0 / (3 * 3 * 128))
    assert abs(w.std().item() / expected_std - 1) < 0.03
    assert abs(w.mean().item()) < 0.1 * expected_std
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            assert torch.all(mod.weight == 1) and torch.all(mod.bias == 0)


def bn(m, x):
    return F.batch_norm(x, m.running_mean, m.running_var, m.weight, m.bias,
                        False, 0.0, m.eps)


def naive_wrn(m, x, frskd):
    """The authors' forward (FRSKD wrn.py / ReviewKD wide_resnet_cifar.py)
    with functional ops and the module's parameters. Returns the named
    tensors each paper distils."""

    def block(b, h):
        cin, cout = b.conv1.in_channels, b.conv1.out_channels
        a = F.relu(h if frskd else bn(b.bn1, h))
        out = F.conv2d(a, b.conv1.weight, stride=b.conv1.stride, padding=1)
        out = F.conv2d(F.relu(bn(b.bn2, out)), b.conv2.weight, padding=1)
        if cin == cout:
            return h + out
        return F.conv2d(a, b.convShortcut.weight,
                        stride=b.convShortcut.stride) + out

    h = F.conv2d(x, m.conv1.weight, padding=1)
    raw, stage_bn = [], []
    for k in (1, 2, 3):
        for b in getattr(m, f'block{k}').layer:
            h = block(b, h)
        raw.append(h)
        if frskd:
            h = bn(getattr(m, f'block{k}bn'), h)
            stage_bn.append(h)
    if frskd:
        return dict(
            frskd=[F.relu(f) for f in stage_bn], frskd_preact=stage_bn,
            final=F.relu(stage_bn[-1]))
    return dict(
        student=raw,
        teacher=[bn(m.block2.layer[0].bn1, raw[0]),
                 bn(m.block3.layer[0].bn1, raw[1]), bn(m.bn1, raw[2])],
        final=F.relu(bn(m.bn1, raw[2])))


def randomize_bn(m):
    g = torch.Generator().manual_seed(0)
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            c = mod.num_features
            mod.running_mean.copy_(torch.randn(c, generator=g) * 0.2)
            mod.running_var.copy_(torch.rand(c, generator=g) + 0.5)
            mod.weight.data.copy_(torch.rand(c, generator=g) + 0.5)
            mod.bias.data.copy_(torch.randn(c, generator=g) * 0.2)


def record(m, x, paths):
    got, hooks = {}, []
    for p in paths:
        hooks.append(m.get_submodule(p).register_forward_hook(
            lambda mod, i, o, p=p: got.__setitem__(p, o)))
    with torch.no_grad():
        outs = m(x)
    for h in hooks:
        h.remove()
    return got, outs


TAPS = {
    'standard': {
        'student': ['block1', 'block2', 'block3'],  # ReviewKD student
        'teacher': ['block2.layer.0.bn1', 'block3.layer.0.bn1', 'bn1'],
    },
    'frskd': {
        'frskd': ['block2.layer.0.relu1', 'block3.layer.0.relu1', 'relu'],
        'frskd_preact': ['block1bn', 'block2bn', 'block3bn'],
    },
}


@pytest.mark.parametrize('style', ['standard', 'frskd'])
def test_documented_tap_paths(style):
    torch.manual_seed(0)
    m = WideResNet(depth=16, widen_factor=2, style=style,
                   out_indices=(0, 1, 2))
    m.init_weights()
    randomize_bn(m)
    m.eval()
    x = torch.randn(2, 3, 8, 8)
    paths = [p for ps in TAPS[style].values() for p in ps]
    got, outs = record(m, x, paths)
    with torch.no_grad():
        ref = naive_wrn(m, x, frskd=style == 'frskd')
    for key, ps in TAPS[style].items():
        for p, expected in zip(ps, ref[key]):
            torch.testing.assert_close(got[p], expected, msg=p)
    torch.testing.assert_close(outs[-1], ref['final'])
    if style == 'standard':
        # pre-ReLU teacher features survive (no in-place ReLU after bn1)
        assert all(got[p].min() < 0 for p in TAPS[style]['teacher'])
        # the same relu1 paths give post-BN-ReLU features in this style too
        got2, _ = record(m, x, TAPS['frskd']['frskd'])
        for p, t in zip(TAPS['frskd']['frskd'], ref['teacher']):
            torch.testing.assert_close(got2[p], F.relu(t))


def test_frskd_style_structure():
    m = WideResNet(depth=16, widen_factor=2, style='frskd')
    assert not hasattr(m.block1.layer[0], 'bn1')
    assert not hasattr(m, 'bn1')
    assert all(hasattr(m, f'block{k}bn') for k in (1, 2, 3))
    s = WideResNet(depth=16, widen_factor=2)
    assert isinstance(s.block1.layer[1].bn1, nn.BatchNorm2d)
    assert not hasattr(s, 'block1bn')


def test_bad_arguments():
    with pytest.raises(ValueError, match='6n \\+ 4'):
        WideResNet(depth=15)
    with pytest.raises(ValueError, match='style'):
        WideResNet(style='pytorch')
    with pytest.raises(ValueError, match='out_indices'):
        WideResNet(out_indices=(3, ))
    assert WideResNet(out_indices=(-1, )).out_indices == (2, )
