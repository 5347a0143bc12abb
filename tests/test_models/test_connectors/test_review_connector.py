import pytest
import torch

from mmkd.models.connectors import ReviewKDConnector
from mmkd.registry import MODELS

# student levels shallow->deep, the last one an avg-pooled "stage"
IN_CH = [4, 6, 8, 8]
OUT_CH = [3, 5, 7, 7]
SIZES = [8, 4, 2, 1]


def _feats(batch=2, sizes=SIZES, chans=IN_CH):
    return [torch.randn(batch, c, s, s) for c, s in zip(chans, sizes)]


def _naive(conn, feats, out_sizes=None):
    """The official loop: reverse everything, zip, insert at the front."""
    x = feats[::-1]
    abfs = list(conn.abfs)[::-1]
    oss = [None] * len(x) if out_sizes is None else list(out_sizes)[::-1]
    out, res = abfs[0](x[0], out_size=oss[0])
    results = [out]
    for f, abf, os in zip(x[1:], abfs[1:], oss[1:]):
        out, res = abf(f, res, os)
        results.insert(0, out)
    return results


def test_matches_naive_review_loop():
    torch.manual_seed(0)
    conn = ReviewKDConnector(IN_CH, OUT_CH)
    feats = _feats()
    outs = conn(feats)
    ref = _naive(conn, feats)
    assert len(outs) == 4
    for o, r, c, s in zip(outs, ref, OUT_CH, SIZES):
        assert o.shape == (2, c, s, s)
        assert torch.allclose(o, r, atol=1e-6)


def test_information_flows_deep_to_shallow_only():
    torch.manual_seed(0)
    conn = ReviewKDConnector(IN_CH, OUT_CH).eval()
    feats = _feats()
    base = conn(feats)
    # perturbing the shallowest level changes only the shallowest output
    f2 = list(feats)
    f2[0] = f2[0] + 1.0
    outs = conn(f2)
    assert not torch.allclose(outs[0], base[0])
    for o, b in zip(outs[1:], base[1:]):
        assert torch.equal(o, b)
    # perturbing the deepest level changes every output
    f3 = list(feats)
    f3[-1] = f3[-1] + 1.0
    outs = conn(f3)
    for o, b in zip(outs, base):
        assert not torch.allclose(o, b)


def test_fusion_flags_and_mid_default():
    conn = ReviewKDConnector(IN_CH, OUT_CH)
    assert [a.fuse for a in conn.abfs] == [True, True, True, False]
    assert conn.mid_channels == 8  # min(512, in_channels[-1])
    assert all(a.mid_channels == 8 for a in conn.abfs)
    assert [a.in_channels for a in conn.abfs] == IN_CH
    assert [a.out_channels for a in conn.abfs] == OUT_CH
    big = ReviewKDConnector([4, 600], [2, 2])
    assert big.mid_channels == 512
    assert ReviewKDConnector(IN_CH, OUT_CH, mid_channels=5).mid_channels == 5


def test_out_sizes_heterogeneous_pair():
    # shufflenet-like student (half the teacher's sizes), non-square
    torch.manual_seed(0)
    conn = ReviewKDConnector(IN_CH, OUT_CH, mid_channels=4)
    feats = [
        torch.randn(2, 4, 4, 6),
        torch.randn(2, 6, 2, 3),
        torch.randn(2, 8, 1, 2),
        torch.randn(2, 8, 1, 1)
    ]
    out_sizes = [(8, 12), (4, 6), (2, 4), (1, 1)]
    outs = conn(feats, out_sizes)
    for o, c, s in zip(outs, OUT_CH, out_sizes):
        assert o.shape == (2, c) + s
    ref = _naive(conn, feats, out_sizes)
    for o, r in zip(outs, ref):
        assert torch.allclose(o, r, atol=1e-6)


def test_single_level():
    conn = ReviewKDConnector([3], [5])
    outs = conn([torch.randn(2, 3, 4, 4)])
    assert len(outs) == 1 and outs[0].shape == (2, 5, 4, 4)


def test_errors():
    with pytest.raises(ValueError, match='same length'):
        ReviewKDConnector([4, 6], [3])
    with pytest.raises(ValueError, match='positive'):
        ReviewKDConnector([4, 0], [3, 3])
    with pytest.raises(ValueError, match='lists'):
        ReviewKDConnector(4, 3)
    conn = ReviewKDConnector(IN_CH, OUT_CH)
    with pytest.raises(ValueError, match='4 feature levels'):
        conn(_feats()[:3])
    bad = _feats()
    bad[1] = torch.randn(2, 5, 4, 4)
    with pytest.raises(ValueError, match='level 1'):
        conn(bad)
    with pytest.raises(ValueError, match='out_sizes'):
        conn(_feats(), [(8, 8)])
    with pytest.raises(ValueError, match='list'):
        conn(torch.randn(2, 4, 8, 8))


def test_gradients_reach_every_student_level():
    conn = ReviewKDConnector(IN_CH, OUT_CH)
    feats = [f.requires_grad_() for f in _feats()]
    outs = conn(feats)
    outs[0].sum().backward()  # the shallowest output sees all levels
    for f in feats:
        assert f.grad is not None and f.grad.abs().sum() > 0


def test_registry_build():
    conn = MODELS.build(
        dict(type='ReviewKDConnector', in_channels=IN_CH,
             out_channels=OUT_CH, mid_channels=6))
    assert isinstance(conn, ReviewKDConnector) and conn.mid_channels == 6


def test_channels_last_is_the_same_function():
    torch.manual_seed(0)
    fast = ReviewKDConnector([4, 8], [6, 12], mid_channels=8).eval()
    plain = ReviewKDConnector([4, 8], [6, 12], mid_channels=8,
                              channels_last=False).eval()
    plain.load_state_dict(fast.state_dict())
    xs = [torch.randn(2, 4, 8, 6), torch.randn(2, 8, 4, 3)]
    for a, b in zip(fast(xs, [(8, 6), (4, 3)]), plain(xs, [(8, 6), (4, 3)])):
        torch.testing.assert_close(a, b)


def test_channels_last_gradient_back_in_the_input_format():
    # contiguous student features get a contiguous gradient (the same
    # values as without channels-last, float64); channels-last ones keep it
    torch.manual_seed(1)
    fast = ReviewKDConnector([4, 8], [6, 12], mid_channels=8).double()
    plain = ReviewKDConnector([4, 8], [6, 12], mid_channels=8,
                              channels_last=False).double()
    plain.load_state_dict(fast.state_dict())
    cl = torch.channels_last
    xs = [torch.randn(2, 4, 8, 6, dtype=torch.float64),
          torch.randn(2, 8, 4, 3, dtype=torch.float64)]
    grads = []
    for conn, fmt in ((fast, torch.contiguous_format), (fast, cl),
                      (plain, torch.contiguous_format)):
        leaves = [x.clone(memory_format=fmt).requires_grad_() for x in xs]
        outs = conn(leaves)
        loss = sum((o * torch.linspace(-1, 1, o.numel(), dtype=o.dtype)
                    .view_as(o)).sum() for o in outs)
        grads.append(torch.autograd.grad(loss, leaves))
    for g in grads[0]:
        assert g.is_contiguous()
    for g in grads[1]:
        assert g.is_contiguous(memory_format=cl) and not g.is_contiguous()
    for fast_grads in grads[:2]:
        for a, b in zip(fast_grads, grads[2]):
            assert (a - b).abs().max() <= 1e-10 * b.abs().max()
