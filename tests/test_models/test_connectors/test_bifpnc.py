import copy
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmkd.models.connectors import BiFPNc
from mmkd.registry import MODELS


def pyramid(channels, size, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randn(batch, c, size // 2**i, size // 2**i, generator=g)
        for i, c in enumerate(channels)
    ]


def randomize_bn(module, seed=0):
    """Non-trivial BN statistics/affine so eval-mode BN is not identity."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)


def naive_bifpnc(m, feats, preact=False):
    """docs/en/methods.md#frskd-bifpnc pseudo-code, written with explicit
    indices and the module's own sub-layers; fusion weights recomputed from
    the raw parameters with the formula relu(w) / (sum(relu(w)) + 1e-6)."""
    lay = m.layer
    n = len(feats)

    def norm(w):
        w = F.relu(w)
        return w / (w.sum() + 1e-6)

    B = {i: lay.lat_conv2[i - 1](F.relu(feats[i])) for i in range(1, n)}
    L = {i: lay.lat_conv[i](F.relu(feats[i])) for i in range(n)}
    P = {n - 1: L[n - 1]}
    for i in range(n - 2, -1, -1):
        w = norm(lay.up_fusion[i].weight)
        up = F.interpolate(F.relu(P[i + 1]), scale_factor=2, mode='nearest')
        up = lay.up_sample[i][1](up)  # 1x1 conv-BN-ReLU d_{i+1} -> d_i
        P[i] = lay.up_conv[i](w[0] * F.relu(L[i]) + w[1] * up)
    T = {0: P[0]}
    for i in range(1, n):
        w = norm(lay.down_fusion[i - 1].weight)
        down = lay.down_sample[i - 1][0](F.relu(T[i - 1]))  # TF-SAME pool
        down = lay.down_sample[i - 1][1](down)  # 1x1 conv-BN-ReLU
        if i < n - 1:
            s = w[0] * F.relu(B[i]) + w[1] * F.relu(P[i]) + w[2] * down
        else:
            s = w[0] * F.relu(B[i]) + w[1] * down
        T[i] = lay.down_conv[i - 1](s)
    out = [T[i] if preact else F.relu(T[i]) for i in range(n)]
    logits = m.fc(F.relu(T[n - 1]).mean(dim=(2, 3)))
    return out, logits


@pytest.mark.parametrize('channels,expected', [
    ([64, 128, 256, 512], [(128, 32, 32), (256, 16, 16), (512, 8, 8),
                           (1024, 4, 4)]),
    ([32, 64, 128], [(64, 32, 32), (128, 16, 16), (256, 8, 8)]),
])
def test_output_shapes(channels, expected):
    m = MODELS.build(
        dict(type='BiFPNc', in_channels=channels, num_classes=100))
    with torch.no_grad():
        out = m(pyramid(channels, 32, batch=1))
    assert [tuple(f.shape[1:]) for f in out['feats']] == expected
    assert all(f.shape[0] == 1 for f in out['feats'])
    assert out['logits'].shape == (1, 100)
    assert m.fc.in_features == expected[-1][0]
    assert all(f.min() >= 0 for f in out['feats'])  # post-ReLU by default


def test_module_structure():
    m = BiFPNc([4, 6, 8], num_classes=5, width=2)
    lay = m.layer
    assert m.out_channels == [8, 12, 16]
    assert [b.conv.in_channels for b in lay.lat_conv] == [4, 6, 8]
    assert [b.conv.out_channels for b in lay.lat_conv] == [8, 12, 16]
    # second, separate lateral projection for the bottom-up skips
    assert [b.conv.in_channels for b in lay.lat_conv2] == [6, 8]
    assert [b.conv.out_channels for b in lay.lat_conv2] == [12, 16]
    # nearest x2 + 1x1 d_{i+1} -> d_i ; TF-SAME pool + 1x1 d_{i-1} -> d_i
    for i, up in enumerate(lay.up_sample):
        assert isinstance(up[0], nn.Upsample) and up[0].mode == 'nearest'
        assert up[0].scale_factor == 2
        assert (up[1].conv.in_channels, up[1].conv.out_channels) == (
            m.out_channels[i + 1], m.out_channels[i])
    for i, down in enumerate(lay.down_sample, start=1):
        assert (down[1].conv.in_channels, down[1].conv.out_channels) == (
            m.out_channels[i - 1], m.out_channels[i])
    assert len(lay.up_conv) == 2 and len(lay.down_conv) == 2
    assert all(len(c) == 2 for c in list(lay.up_conv) + list(lay.down_conv))


def test_initial_fusion_weights():
    m = BiFPNc([64, 128, 256, 512], num_classes=10)
    lay = m.layer
    eps = 1e-6
    two = torch.full((2, ), 1.0 / (2 + eps))  # 0.49999975
    three = torch.full((3, ), 1.0 / (3 + eps))  # 0.3333332222
    assert abs(two[0].item() - 0.49999975) < 1e-7  # float32
    assert abs(three[0].item() - 0.3333332222) < 1e-7
    assert len(lay.up_fusion) == 3
    for f in lay.up_fusion:
        torch.testing.assert_close(f.normalized_weights(), two)
    # down fusions: 3 inputs for the middle levels, 2 for the top level
    assert [f.num_inputs for f in lay.down_fusion] == [3, 3, 2]
    for f in lay.down_fusion[:2]:
        torch.testing.assert_close(f.normalized_weights(), three)
    torch.testing.assert_close(lay.down_fusion[2].normalized_weights(), two)


@pytest.mark.parametrize('preact', [False, True])
def test_matches_naive_recomputation(preact):
    torch.manual_seed(0)
    channels = [3, 5, 4]
    m = BiFPNc(channels, num_classes=7, width=2, preact=preact)
    randomize_bn(m)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # distinct positive fusion weights (every path on)
        for f in list(m.layer.up_fusion) + list(m.layer.down_fusion):
            f.weight.copy_(torch.rand(f.num_inputs, generator=g) + 0.2)
    m.eval()
    x = pyramid(channels, 8)
    out = m(x)
    feats, logits = naive_bifpnc(m, x, preact=preact)
    for a, b in zip(out['feats'], feats):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(out['logits'], logits)
    if preact:
        assert any(f.min() < 0 for f in out['feats'])


def test_two_level_wiring():
    """With a fusion weight ReLU'd to zero a path must disappear."""
    torch.manual_seed(0)
    m = BiFPNc([3, 4], num_classes=3, width=1).eval()
    randomize_bn(m)
    x0, x1 = pyramid([3, 4], 4)
    lay = m.layer
    with torch.no_grad():
        # level 0 = top-down node from L_0 only: F_1 must not matter there
        lay.up_fusion[0].weight.copy_(torch.tensor([1.0, -1.0]))
    a = m([x0, x1])['feats'][0]
    b = m([x0, x1 + 1.0])['feats'][0]
    torch.testing.assert_close(a, b)
    with torch.no_grad():
        # ... and from the upsampled L_1 only: F_0 must not matter
        lay.up_fusion[0].weight.copy_(torch.tensor([-1.0, 1.0]))
    a = m([x0, x1])['feats'][0]
    b = m([x0 + 1.0, x1])['feats'][0]
    torch.testing.assert_close(a, b)
    expected = F.relu(lay.up_conv[0](lay.up_sample[0](F.relu(
        lay.lat_conv[1](F.relu(x1)))) * (1 / (1 + 1e-6))))
    torch.testing.assert_close(a, expected)
    with torch.no_grad():
        # top level = skip B_1 only: it comes from lat_conv2, not lat_conv
        lay.down_fusion[0].weight.copy_(torch.tensor([1.0, -1.0]))
    top = m([x0, x1])['feats'][1]
    torch.testing.assert_close(
        top,
        F.relu(lay.down_conv[0](lay.lat_conv2[0](F.relu(x1)) / (1 + 1e-6))))
    with torch.no_grad():
        lay.lat_conv[1].conv.weight.mul_(3.0)
    torch.testing.assert_close(m([x0, x1])['feats'][1], top)


def test_gradient_reaches_student_features():
    # as the official code: the self-teacher's CE trains the student too
    m = BiFPNc([3, 4, 5], num_classes=4)
    x = [f.requires_grad_() for f in pyramid([3, 4, 5], 8)]
    m(x)['logits'].sum().backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in x)


def test_default_init_is_pytorch_default():
    """Conv weights keep kaiming_uniform(a=sqrt(5)): |w| <= 1/sqrt(fan_in),
    also after init_weights() (which the Runner calls)."""
    torch.manual_seed(0)
    m = BiFPNc([16, 32], num_classes=3)
    m.init_weights()
    for name, mod in m.named_modules():
        if isinstance(mod, nn.Conv2d):
            w = mod.weight
            bound = 1 / math.sqrt(w[0].numel())
            assert w.abs().max() <= bound + 1e-6, name
            if w.numel() >= 512:  # uniform: the extremes get near the bound
                assert w.abs().max() > 0.9 * bound, name
        if isinstance(mod, nn.BatchNorm2d):
            assert torch.all(mod.weight == 1) and torch.all(mod.bias == 0)
    for f in list(m.layer.up_fusion) + list(m.layer.down_fusion):
        assert torch.all(f.weight == 1)


def test_input_validation():
    m = BiFPNc([3, 4, 5], num_classes=2)
    good = pyramid([3, 4, 5], 8)
    with pytest.raises(ValueError, match='expects 3 levels'):
        m(good[:2])
    with pytest.raises(ValueError, match='list of 3 tensors'):
        m(good[0])
    with pytest.raises(ValueError, match='level 1 has 6 channels'):
        m([good[0], torch.randn(2, 6, 4, 4), good[2]])
    with pytest.raises(ValueError, match='exactly half'):
        m([good[0], torch.randn(2, 4, 5, 5), torch.randn(2, 5, 2, 2)])
    with pytest.raises(ValueError, match='exactly half'):  # non-square
        m([torch.randn(2, 3, 8, 6), torch.randn(2, 4, 4, 4), good[2]])
    with pytest.raises(ValueError, match='batch size'):
        m([good[0], good[1], torch.randn(3, 5, 2, 2)])
    # non-square and odd-sized pyramids are fine when they halve exactly
    out = m([torch.randn(1, 3, 12, 20), torch.randn(1, 4, 6, 10),
             torch.randn(1, 5, 3, 5)])
    assert out['feats'][2].shape == (1, 10, 3, 5)
    # one level: a single tensor (one input tap) is accepted
    one = BiFPNc([3], num_classes=2)(torch.randn(2, 3, 4, 4))
    assert one['feats'][0].shape == (2, 6, 4, 4)


def test_resnet_cifar_taps_equal_frskd_features():
    """mmpretrain's ResNet_CIFAR(depth=18) = FRSKD's cifarresnet18, and the
    outputs of layer1..layer4 are FRSKD's (post-ReLU) features."""
    from mmpretrain.models.backbones import ResNet_CIFAR
    torch.manual_seed(0)
    net = ResNet_CIFAR(depth=18, out_indices=(0, 1, 2, 3))
    randomize_bn(net)
    net.eval()
    x = torch.randn(2, 3, 8, 8)

    def frskd_block(blk, h):  # FRSKD BasicBlock: ReLU at the *input*
        h = F.relu(h)
        out = blk.norm2(blk.conv2(F.relu(blk.norm1(blk.conv1(h)))))
        sc = blk.downsample(h) if blk.downsample is not None else h
        return out + sc  # no ReLU on the output

    with torch.no_grad():
        h = net.norm1(net.conv1(x))  # FRSKD stem: conv -> bn (ReLU in block)
        frskd_feats = []
        for name in ('layer1', 'layer2', 'layer3', 'layer4'):
            for blk in getattr(net, name):
                h = frskd_block(blk, h)
            frskd_feats.append(F.relu(h))

        recorded = {}
        hooks = [
            getattr(net, n).register_forward_hook(
                lambda mod, i, o, n=n: recorded.__setitem__(n, o.clone()))
            for n in ('layer1', 'layer2', 'layer3', 'layer4')
        ]
        outs = net(x)
        for hk in hooks:
            hk.remove()
    for k, f in enumerate(frskd_feats):
        torch.testing.assert_close(recorded[f'layer{k + 1}'], f)
        torch.testing.assert_close(outs[k], f)
    assert [tuple(f.shape[1:]) for f in frskd_feats] == [(64, 8, 8),
                                                         (128, 4, 4),
                                                         (256, 2, 2),
                                                         (512, 1, 1)]


def test_channels_last_is_the_same_function():
    torch.manual_seed(0)
    fast = BiFPNc([8, 16], num_classes=5, channels_last=True).eval()
    plain = BiFPNc([8, 16], num_classes=5, channels_last=False).eval()
    plain.load_state_dict(fast.state_dict())
    xs = [torch.randn(2, 8, 8, 8), torch.randn(2, 16, 4, 4)]
    a, b = fast(xs), plain(xs)
    assert a['feats'][0].is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(a['logits'], b['logits'])
    for fa, fb in zip(a['feats'], b['feats']):
        torch.testing.assert_close(fa, fb)


def _train_mode_pair(norm_cfg, seed=0):
    """Two identical float64 BiFPNc in training mode, with non-trivial BN
    affine/statistics and distinct positive fusion weights."""
    torch.manual_seed(seed)
    m = BiFPNc([3, 5, 4], num_classes=7, width=2, norm_cfg=norm_cfg)
    randomize_bn(m, seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for f in list(m.layer.up_fusion) + list(m.layer.down_fusion):
            f.weight.copy_(torch.rand(f.num_inputs, generator=g) + 0.2)
        m.layer.down_fusion[0].weight[0] = -0.5  # a path switched off
    m = m.double().train()
    return m, copy.deepcopy(m)


@pytest.mark.parametrize('norm_cfg', [
    dict(type='BN'),
    dict(type='BN', momentum=None),  # cumulative running average
    dict(type='GN', num_groups=2),  # not folded: the module path
])
@pytest.mark.parametrize('preact', [False, True])
def test_training_step_matches_module_order(norm_cfg, preact):
    """The fused computation (fusion weights folded into BN, the up-resize
    block before the upsampling, broadcast fusion sums, pool without the
    padded copy) against every sub-module called in the documented order,
    in training mode and float64: outputs, gradients of the inputs and of
    every parameter, and BN running statistics after two steps. The top
    level is 2x2 with batch 2, so the up-resize BN sees 8 pixels before the
    upsampling and 32 after: the running variance differs by the factor
    4 * 7 / 31 unless it is updated with the upsampled count."""
    fused, ref = _train_mode_pair(norm_cfg)
    for step in range(2):
        x = [f.double() for f in pyramid([3, 5, 4], 8, seed=step)]
        xa = [f.clone().requires_grad_() for f in x]
        xb = [f.clone().requires_grad_() for f in x]
        out = fused(xa, preact=preact)
        feats, logits = naive_bifpnc(ref, xb, preact=preact)
        g = torch.Generator().manual_seed(10 + step)
        weights = [torch.randn(f.shape, generator=g, dtype=torch.float64)
                   for f in feats]
        for a, b in zip(out['feats'], feats):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(out['logits'], logits, rtol=1e-10,
                                   atol=1e-10)

        def total(fs, lg):
            return sum((f * w).sum() for f, w in zip(fs, weights)) + \
                lg.square().sum()

        total(out['feats'], out['logits']).backward()
        total(feats, logits).backward()
        for a, b in zip(xa, xb):
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-10,
                                       atol=1e-10)
        params_b = dict(ref.named_parameters())
        for name, p in fused.named_parameters():
            assert p.grad is not None, name
            torch.testing.assert_close(
                p.grad, params_b[name].grad, rtol=1e-10, atol=1e-10,
                msg=lambda m, n=name: f'{n}: {m}')
        fused.zero_grad()
        ref.zero_grad()
    buffers_b = dict(ref.named_buffers())
    for name, buf in fused.named_buffers():
        torch.testing.assert_close(
            buf, buffers_b[name], rtol=1e-10, atol=1e-10,
            msg=lambda m, n=name: f'{n}: {m}')


def test_up_resize_running_variance_uses_upsampled_count():
    """Independent of the reference: the up-resize BN of the top-down node
    at level 1 gets the running variance of its output statistics over the
    *upsampled* map, i.e. N = 4 * (B * h * w) in the unbiased variance."""
    torch.manual_seed(0)
    m = BiFPNc([3, 5, 4], num_classes=2, width=1).double().train()
    block = m.layer.up_sample[1][1]
    x = [f.double() for f in pyramid([3, 5, 4], 8)]
    with torch.no_grad():  # the block's input relu(P_2) = L_2, recomputed
        top = copy.deepcopy(m.layer.lat_conv[2])(F.relu(x[2]))
        z = F.conv2d(top, block.conv.weight)  # (2, 5, 2, 2)
    m(x)
    assert z.shape[-2:] == (2, 2)
    big = F.interpolate(z, scale_factor=2, mode='nearest')
    unbiased = big.var(dim=(0, 2, 3), unbiased=True)  # N = 32
    torch.testing.assert_close(block.bn.running_var,
                               0.9 * torch.ones_like(unbiased) +
                               0.1 * unbiased, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(block.bn.running_mean,
                               0.1 * z.mean(dim=(0, 2, 3)), rtol=1e-12,
                               atol=1e-12)


@pytest.mark.parametrize('preact', [False, True])
def test_channels_last_gradient_in_the_input_format(preact):
    # float64, train mode: contiguous student features get a contiguous
    # gradient, channels-last ones a channels-last one, the same values as
    # the plain (contiguous) self-teacher; the map that the classifier pools
    # gets a channels-last gradient (no mixed-format ReLU backward)
    torch.manual_seed(2)
    fast = BiFPNc([3, 5, 4], num_classes=6, width=2, preact=preact)
    fast = fast.double().train()
    plain = BiFPNc([3, 5, 4], num_classes=6, width=2, preact=preact,
                   channels_last=False).double().train()
    plain.load_state_dict(fast.state_dict())
    cl = torch.channels_last
    xs = pyramid([3, 5, 4], 8)
    grads, pooled_grads = [], []
    for conn, fmt in ((fast, torch.contiguous_format), (fast, cl),
                      (plain, torch.contiguous_format)):
        leaves = [x.double().clone(memory_format=fmt).requires_grad_()
                  for x in xs]
        out = conn(leaves)
        last = out['feats'][-1]
        last.register_hook(pooled_grads.append)
        logits = out['logits']
        loss = (logits * torch.linspace(
            -1, 1, logits.numel(), dtype=logits.dtype).view_as(logits)).sum()
        grads.append(torch.autograd.grad(loss, leaves))
    for g in grads[0]:
        assert g.is_contiguous()
    for g in grads[1]:
        assert g.is_contiguous(memory_format=cl) and not g.is_contiguous()
    for g in pooled_grads[:2]:
        assert g.is_contiguous(memory_format=cl) and not g.is_contiguous()
    for fast_grads in grads[:2]:
        for a, b in zip(fast_grads, grads[2]):
            assert (a - b).abs().max() <= 1e-10 * b.abs().max()
