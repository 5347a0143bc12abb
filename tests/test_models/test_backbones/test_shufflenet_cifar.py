import pytest
import torch
import torch.nn.functional as F

from mmkd.models.backbones import CIFARShuffleNetV1, CIFARShuffleNetV2
from mmkd.registry import MODELS


def _bn(c):
    return 2 * c


def _count_v1(widths=(240, 480, 960), blocks=(4, 8, 4), g=3, classes=100):
    """ShuffleV1 parameters by hand (stem 1x1 to 24, no conv biases)."""
    total = 3 * 24 + _bn(24)
    cin = 24
    for i, (w, n) in enumerate(zip(widths, blocks)):
        for j in range(n):
            branch = w - cin if j == 0 else w
            mid = branch // 4
            g1 = 1 if (i == 0 and j == 0) else g
            total += cin * mid // g1 + _bn(mid)  # grouped 1x1
            total += 9 * mid + _bn(mid)  # depthwise 3x3
            total += mid * branch // g + _bn(branch)  # grouped 1x1
            cin = w
    return total + cin * classes + classes


def _count_v2(widths=(116, 232, 464, 1024), blocks=(3, 7, 3), classes=100):
    total = 3 * 24 + _bn(24)
    cin = 24
    for w, n in zip(widths[:3], blocks):
        m = w // 2
        # down unit: dw(cin) + 1x1(cin->m) | 1x1(cin->m) + dw(m) + 1x1(m->m)
        total += 9 * cin + _bn(cin) + cin * m + _bn(m)
        total += cin * m + _bn(m) + 9 * m + _bn(m) + m * m + _bn(m)
        # basic units on half the channels: 1x1, dw, 1x1
        total += n * (m * m + _bn(m) + 9 * m + _bn(m) + m * m + _bn(m))
        cin = w
    total += cin * widths[3] + _bn(widths[3])
    return total + widths[3] * classes + classes


def test_v1_params_and_shapes():
    model = CIFARShuffleNetV1(out_indices=(0, 1, 2))
    n = sum(p.numel() for p in model.parameters()) + 960 * 100 + 100
    assert n == _count_v1()
    assert abs(n / 1e6 - 0.95) < 0.01  # CRD/ReviewKD tables
    with torch.no_grad():
        outs = model(torch.randn(2, 3, 32, 32))
    for o, c, s in zip(outs, (240, 480, 960), (16, 8, 4)):
        assert o.shape == (2, c, s, s)
    # the very first unit's first 1x1 conv is not grouped (official)
    assert model.layer1[0].conv1.groups == 1
    assert model.layer1[1].conv1.groups == 3
    assert model.layer2[0].conv1.groups == 3


def test_v2_params_and_shapes():
    model = CIFARShuffleNetV2(out_indices=(0, 1, 2, 3))
    n = sum(p.numel() for p in model.parameters()) + 1024 * 100 + 100
    assert n == _count_v2()
    assert abs(n / 1e6 - 1.36) < 0.01
    with torch.no_grad():
        outs = model(torch.randn(2, 3, 32, 32))
    for o, c, s in zip(outs, (116, 232, 464, 1024), (16, 8, 4, 4)):
        assert o.shape == (2, c, s, s)


def test_v1_preact_tap():
    torch.manual_seed(0)
    model = CIFARShuffleNetV1(
        stage_channels=(48, 96, 192), num_blocks=(2, 1, 2), groups=3,
        out_indices=(0, 1, 2))
    rec = {}
    last = {1: 1, 2: 0, 3: 1}
    for k, m in last.items():
        mod = model.get_submodule(f'layer{k}.{m}.preact')
        mod.register_forward_hook(
            lambda mod, i, o, k=k: rec.__setitem__(k, o.detach().clone()))
    outs = model(torch.randn(2, 3, 16, 16))
    for k, out in zip((1, 2, 3), outs):
        assert rec[k].min() < 0
        assert torch.allclose(F.relu(rec[k]), out)
    # a stride-2 unit concatenates the 3x3/2 average-pooled input
    unit = model.layer2[0]
    x = torch.rand(2, 48, 4, 4)
    y = unit(x)
    assert y.shape == (2, 96, 2, 2)
    pooled = F.avg_pool2d(x, 3, stride=2, padding=1)
    assert torch.allclose(y[:, 48:], pooled)


def test_v2_preact_tap_is_unshuffled_concat():
    torch.manual_seed(0)
    model = CIFARShuffleNetV2(widen_factor=0.2, out_indices=(0, 1, 2))
    unit = model.layer1[3]  # last unit of stage 1 (unit 0 is stride 2)
    rec = {}
    unit.preact.register_forward_hook(
        lambda m, i, o: rec.__setitem__('pre', o.detach().clone()))
    unit.register_forward_hook(
        lambda m, i, o: rec.__setitem__('in', i[0].detach().clone()))
    outs = model(torch.randn(2, 3, 16, 16))
    pre, x = rec['pre'], rec['in']
    c = x.shape[1] // 2
    assert torch.equal(pre[:, :c], x[:, :c])  # untouched half first
    assert pre.min() < 0
    # output = channel shuffle (2 groups) of relu(pre): channel 2i <- i,
    # channel 2i+1 <- c + i
    r = F.relu(pre)
    expected = torch.stack([r[:, :c], r[:, c:]], dim=2).flatten(1, 2)
    assert torch.allclose(outs[0], expected)


def test_grayscale_and_errors():
    model = CIFARShuffleNetV2(widen_factor=0.5, in_channels=1)
    (out, ) = model(torch.randn(2, 1, 16, 16))
    assert out.shape == (2, 1024, 2, 2)
    with pytest.raises(ValueError, match='widen_factor'):
        CIFARShuffleNetV2(widen_factor=0.7)
    with pytest.raises(ValueError, match='out_indices'):
        CIFARShuffleNetV1(out_indices=(3, ))
    with pytest.raises(ValueError, match='3 entries'):
        CIFARShuffleNetV1(stage_channels=(240, 480))


def test_registry_build():
    assert isinstance(
        MODELS.build(dict(type='CIFARShuffleNetV1')), CIFARShuffleNetV1)
    assert isinstance(
        MODELS.build(dict(type='CIFARShuffleNetV2', widen_factor=0.5)),
        CIFARShuffleNetV2)
