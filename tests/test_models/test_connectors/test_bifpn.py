import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmkd.models.connectors import BiFPN
from mmkd.models.connectors.bifpn_blocks import MaxPool2dTFSame
from mmkd.registry import MODELS
# shared with the BiFPNc tests (this folder is on sys.path)
from test_bifpnc import pyramid, randomize_bn  # noqa: E402


def randomize(module, seed=0):
    """Random BN statistics / affine and distinct positive fusion weights."""
    randomize_bn(module, seed)
    g = torch.Generator().manual_seed(seed + 1)
    for name, p in module.named_parameters():
        if 'fusion' in name:  # distinct positive fusion weights
            p.data.copy_(torch.rand(p.shape, generator=g) + 0.2)


def naive_layer(lay, feats, first, preact):
    """Official BiFPN_layer (fixed width): resizes without convs."""
    n = len(feats)

    def norm(w):
        w = F.relu(w)
        return w / (w.sum() + 1e-6)

    B = [None] + [lay.lat_conv2[i - 1](F.relu(feats[i])) for i in range(1, n)]
    L = [lay.lat_conv[i](F.relu(feats[i])) for i in range(n)] if first \
        else list(feats)
    P = [None] * n
    P[n - 1] = L[n - 1]
    for i in range(n - 2, -1, -1):
        w = norm(lay.up_fusion[i].weight)
        up = F.interpolate(F.relu(P[i + 1]), scale_factor=2, mode='nearest')
        P[i] = lay.up_conv[i](w[0] * F.relu(L[i]) + w[1] * up)
    T = [P[0]]
    for i in range(1, n):
        w = norm(lay.down_fusion[i - 1].weight)
        down = MaxPool2dTFSame(3, 2)(F.relu(T[i - 1]))
        terms = [F.relu(B[i])] + ([F.relu(P[i])] if i < n - 1 else []) + [down]
        T.append(lay.down_conv[i - 1](sum(wj * t for wj, t in zip(w, terms))))
    return T if preact else [F.relu(t) for t in T]


def test_output_shapes_default_width():
    channels = [64, 128, 256, 512]
    m = MODELS.build(dict(type='BiFPN', in_channels=channels, num_classes=10))
    out = m(pyramid(channels, 16, batch=1))
    assert [tuple(f.shape) for f in out['feats']] == [(1, 256, 16, 16),
                                                      (1, 256, 8, 8),
                                                      (1, 256, 4, 4),
                                                      (1, 256, 2, 2)]
    assert out['logits'].shape == (1, 10) and m.fc.in_features == 256


def test_structure_fixed_width():
    m = BiFPN([3, 5, 7], num_classes=4, num_channels=6, num_repeats=2)
    first, second = m.layers
    assert [b.conv.in_channels for b in first.lat_conv] == [3, 5, 7]
    assert all(b.conv.out_channels == 6 for b in first.lat_conv)
    assert [b.conv.in_channels for b in first.lat_conv2] == [5, 7]
    # no channel-changing conv after the resizes
    for up in first.up_sample:
        assert len(up) == 1 and isinstance(up[0], nn.Upsample)
    for down in first.down_sample:
        assert len(down) == 1 and isinstance(down[0], MaxPool2dTFSame)
    # later layers: no lat_conv, lat_conv2 is num_channels -> num_channels
    assert len(second.lat_conv) == 0
    assert all(b.conv.in_channels == 6 for b in second.lat_conv2)


@pytest.mark.parametrize('preact', [False, True])
def test_matches_naive_two_repeats(preact):
    torch.manual_seed(0)
    m = BiFPN([3, 5, 7], num_classes=4, num_channels=6, num_repeats=2,
              preact=preact)
    randomize(m)
    m.eval()
    x = pyramid([3, 5, 7], 8)
    out = m(x)
    with torch.no_grad():
        h = naive_layer(m.layers[0], x, first=True, preact=False)
        h = naive_layer(m.layers[1], h, first=False, preact=preact)
        logits = m.fc(F.relu(h[-1]).mean(dim=(2, 3)))
    for a, b in zip(out['feats'], h):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(out['logits'], logits)


def test_validation():
    m = BiFPN([3, 5], num_classes=2, num_channels=4)
    with pytest.raises(ValueError, match='expects 2 levels'):
        m(pyramid([3], 8))
    with pytest.raises(ValueError, match='level 0 has 4 channels'):
        m(pyramid([4, 5], 8))
    with pytest.raises(ValueError, match='exactly half'):
        m([torch.randn(1, 3, 8, 8), torch.randn(1, 5, 3, 3)])
    with pytest.raises(ValueError, match='num_repeats'):
        BiFPN([3, 5], num_classes=2, num_repeats=0)
