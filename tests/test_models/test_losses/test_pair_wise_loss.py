import math

import pytest
import torch

from mmkd.models.losses import PairWiseLoss
from mmkd.registry import MODELS


def _sim(f, detach_norm=True):
    """(B, C, H, W) -> (B, M, M) cosine similarities of the positions."""
    norm = f.norm(dim=1, keepdim=True) + 1e-8
    if detach_norm:
        norm = norm.detach()
    g = (f / norm).flatten(2)
    return torch.einsum('bcm,bcn->bmn', g, g)


def _naive(fs, ft, detach_norm=True):
    """Explicit N x N matrices; mean over B * M * M entries."""
    d = _sim(fs, detach_norm) - _sim(ft.detach(), detach_norm)
    return (d**2).mean()


def _loop(fs, ft):
    """Double loop over node pairs (value only)."""
    B, _, H, W = fs.shape
    M = H * W
    total = 0.0
    for b in range(B):
        s = fs[b].reshape(fs.shape[1], M).double()
        t = ft[b].reshape(ft.shape[1], M).double()
        for i in range(M):
            for j in range(M):
                cs = s[:, i] @ s[:, j] / ((s[:, i].norm() + 1e-8) *
                                          (s[:, j].norm() + 1e-8))
                ct = t[:, i] @ t[:, j] / ((t[:, i].norm() + 1e-8) *
                                          (t[:, j].norm() + 1e-8))
                total += float(cs - ct)**2
    return total / (M * M * B)


def _window_max_pool(f, kh, kw):
    """Max over windows [i*kh, min((i+1)*kh, H)) x ...: ceil-mode nodes."""
    B, C, H, W = f.shape
    rows = []
    for i in range(math.ceil(H / kh)):
        cols = []
        for j in range(math.ceil(W / kw)):
            win = f[:, :, i * kh:(i + 1) * kh, j * kw:(j + 1) * kw]
            cols.append(win.amax(dim=(2, 3)))
        rows.append(torch.stack(cols, dim=-1))
    return torch.stack(rows, dim=-2)


def _feats(B, Cs, Ct, H, W, seed=0):
    g = torch.Generator().manual_seed(seed)
    fs = torch.randn(B, Cs, H, W, generator=g)
    ft = torch.randn(B, Ct, H, W, generator=g).relu() + 0.1
    return fs, ft


@pytest.mark.parametrize('shape', [(8, 8), (5, 7)])
def test_full_resolution_exact_equals_naive(shape):
    fs, ft = _feats(2, 3, 5, *shape)
    ref_fs = fs.double().requires_grad_(True)
    ref = _naive(ref_fs, ft.double())
    ref.backward()
    for method in ('exact', 'naive'):
        x = fs.clone().requires_grad_(True)
        loss = PairWiseLoss(pool='none', method=method)(x, ft)
        loss.backward()
        assert torch.allclose(loss.double(), ref, rtol=1e-5, atol=1e-7)
        assert torch.allclose(x.grad.double(),
                              ref_fs.grad,
                              rtol=1e-4,
                              atol=1e-7)
    assert ref_fs.grad.abs().max() > 0


def test_full_resolution_against_double_loop():
    fs, ft = _feats(2, 3, 4, 3, 2, seed=1)
    expected = _loop(fs, ft)
    for method in ('exact', 'naive'):
        loss = PairWiseLoss(pool='none', method=method)(fs, ft)
        assert math.isclose(loss.item(), expected, rel_tol=1e-5)


def test_exact_float64_gram():
    fs, ft = _feats(1, 4, 6, 6, 6, seed=2)
    ref = _naive(fs.double(), ft.double())
    loss = PairWiseLoss(pool='none', method='exact', gram_dtype='float64')(fs,
                                                                           ft)
    assert torch.allclose(loss.double(), ref, rtol=1e-6)
    assert loss.dtype == torch.float32


@pytest.mark.parametrize('size,nodes', [((64, 64), (2, 2)), ((65, 65), (3, 3)),
                                        ((9, 6), (3, 2))])
def test_max_pool_nodes_against_naive(size, nodes):
    H, W = size
    fs, ft = _feats(2, 3, 4, H, W, seed=3)
    kh, kw = max(1, int(H * 0.5)), max(1, int(W * 0.5))
    ps, pt = _window_max_pool(fs, kh, kw), _window_max_pool(ft, kh, kw)
    assert tuple(ps.shape[-2:]) == nodes
    ref_fs = fs.double().requires_grad_(True)
    ref = _naive(_window_max_pool(ref_fs, kh, kw), pt.double())
    ref.backward()
    for method in ('auto', 'exact', 'naive'):
        x = fs.clone().requires_grad_(True)
        loss = PairWiseLoss(pool='max', scale=0.5, method=method)(x, ft)
        loss.backward()
        assert torch.allclose(loss.double(), ref, rtol=1e-5, atol=1e-7)
        assert torch.allclose(x.grad.double(),
                              ref_fs.grad,
                              rtol=1e-4,
                              atol=1e-7)


def test_norm_is_detached():
    fs, ft = _feats(1, 3, 4, 4, 4, seed=4)
    fs = fs * torch.linspace(0.5, 3, 16).view(1, 1, 4, 4)  # varied norms
    grads = {}
    for detach in (True, False):
        x = fs.double().requires_grad_(True)
        _naive(x, ft.double(), detach_norm=detach).backward()
        grads[detach] = x.grad
    x = fs.clone().requires_grad_(True)
    PairWiseLoss(pool='none', method='exact')(x, ft).backward()
    assert torch.allclose(x.grad.double(), grads[True], rtol=1e-4, atol=1e-7)
    # the detached norm changes the gradient (the test can tell them apart)
    assert not torch.allclose(grads[True], grads[False], rtol=1e-2)


def test_teacher_gets_no_gradient_and_channels_may_differ():
    fs, ft = _feats(2, 3, 7, 6, 6, seed=5)
    fs.requires_grad_(True)
    ft.requires_grad_(True)
    PairWiseLoss(pool='none')(fs, ft).backward()
    assert ft.grad is None
    assert fs.grad.abs().sum() > 0


def test_zero_for_identical_structure_and_loss_weight():
    fs, ft = _feats(2, 3, 4, 5, 5, seed=6)
    # scaling every position changes the features, not the cosines
    assert PairWiseLoss(pool='none', method='exact')(2 * fs, fs) < 1e-6
    assert PairWiseLoss(pool='none', method='naive')(2 * fs, fs) < 1e-6
    assert torch.allclose(
        PairWiseLoss(pool='none', loss_weight=0.5)(fs, ft),
        0.5 * PairWiseLoss(pool='none')(fs, ft))


def test_auto_method_selection():
    loss = PairWiseLoss(method='auto')
    assert loss.select_method(4, 128, 512) == 'naive'  # pooled 2x2
    assert loss.select_method(64 * 64, 128, 512) == 'exact'
    assert loss.select_method(64 * 64, 19, 19) == 'exact'
    assert loss.select_method(16, 128, 128) == 'naive'
    assert PairWiseLoss(method='naive').select_method(10**6, 1, 1) == 'naive'


def test_bad_input():
    loss = PairWiseLoss()
    with pytest.raises(ValueError, match='spatial size'):
        loss(torch.randn(1, 3, 8, 8), torch.randn(1, 3, 4, 4))
    with pytest.raises(ValueError, match='batch'):
        loss(torch.randn(2, 3, 8, 8), torch.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match='B, C, H, W'):
        loss(torch.randn(3, 8, 8), torch.randn(3, 8, 8))
    for kwargs in (dict(pool='avg'), dict(scale=0), dict(scale=1.5),
                   dict(method='fast'), dict(gram_dtype='float16')):
        with pytest.raises(ValueError):
            PairWiseLoss(**kwargs)


def test_build_from_registry():
    loss = MODELS.build(dict(type='PairWiseLoss', loss_weight=0.5))
    assert isinstance(loss, PairWiseLoss)
    assert loss.pool == 'max' and loss.scale == 0.5


def _regime(regime, B=2, Cs=16, Ct=64, H=24, W=24, seed=0):
    """float32 features: 'relu' (independent post-ReLU), 'cos99' (post-ReLU
    with a large common component: cosines ~0.99) or 'converged' (teacher
    = student channels repeated, an isometry, student perturbed by 1e-4)."""
    g = torch.Generator().manual_seed(seed)
    if regime == 'relu':
        return (torch.randn(B, Cs, H, W, generator=g).relu(),
                torch.randn(B, Ct, H, W, generator=g).relu())
    if regime == 'cos99':
        def feat(c):
            mean = 3 * torch.randn(B, c, 1, 1, generator=g).abs()
            return (mean + 0.4 * torch.randn(B, c, H, W, generator=g)).relu()
        return feat(Cs), feat(Ct)
    z = torch.randn(B, Cs, H, W, generator=g).relu() + 0.05
    k = Ct // Cs
    ft = z.repeat_interleave(k, dim=1) / math.sqrt(k)
    fs = z * (1 + 1e-4 * torch.randn(z.shape, generator=g))
    return fs, ft


def _errors(fs, ft, **kwargs):
    """Relative value and gradient (norm) errors of PairWiseLoss(pool='none')
    on float32 inputs against the float64 naive N x N computation."""
    ref_x = fs.double().requires_grad_(True)
    ref = _naive(ref_x, ft.double())
    ref.backward()
    x = fs.clone().requires_grad_(True)
    loss = PairWiseLoss(pool='none', **kwargs)(x, ft)
    loss.backward()
    assert loss.dtype == torch.float32 and x.grad.dtype == torch.float32
    value_err = abs(loss.double() - ref).item() / ref.item()
    grad_err = ((x.grad.double() - ref_x.grad).norm() /
                ref_x.grad.norm()).item()
    return ref.item(), loss.item(), value_err, grad_err


@pytest.mark.parametrize('regime', ['relu', 'cos99'])
def test_exact_accuracy_on_realistic_maps(regime):
    fs, ft = _regime(regime)
    ref, _, value_err, grad_err = _errors(fs, ft, method='exact')
    assert ref > 1e-6  # the regime: loss of order 1e-6 and above
    assert value_err < 1e-5, value_err
    assert grad_err < 1e-4, grad_err


def test_exact_accuracy_near_convergence():
    fs, ft = _regime('converged')
    ref, loss, value_err, grad_err = _errors(fs, ft, method='exact')
    assert 1e-11 < ref < 1e-9  # structures nearly equal
    assert loss > 0
    assert value_err < 1e-2, value_err
    assert grad_err < 1e-3, grad_err
    # no worse than the authors' formula (N x N matrices) in float32
    _, _, naive_value_err, naive_grad_err = _errors(fs, ft, method='naive')
    assert value_err <= naive_value_err
    assert grad_err <= naive_grad_err
    # the regime is hard: float32 Gram products lose the value entirely
    _, _, f32_value_err, _ = _errors(fs, ft, method='exact',
                                     gram_dtype='float32')
    assert f32_value_err > 1e-1


@pytest.mark.parametrize('seed', range(4))
def test_exact_never_negative(seed):
    # identical structure: true value 0 (up to the 1e-8 offset of the norm)
    z = torch.rand(2, 8, 12, 12, generator=torch.Generator().manual_seed(seed))
    for ft in (z, z.repeat_interleave(4, dim=1) / 2, 3 * z):
        loss = PairWiseLoss(pool='none', method='exact')(z, ft)
        assert 0 <= loss < 1e-12
        # float32 Gram products: rounding of ~1e-7, but never below 0
        loss = PairWiseLoss(pool='none', method='exact',
                            gram_dtype='float32')(z, ft)
        assert 0 <= loss < 1e-6


def test_autocast_and_low_precision_inputs():
    fs, ft = _regime('relu', Cs=8, Ct=16, H=10, W=10)
    fs, ft = fs.bfloat16(), ft.bfloat16()
    ref_x = fs.double().requires_grad_(True)
    ref = _naive(ref_x, ft.double())
    ref.backward()
    for method in ('exact', 'naive'):
        x = fs.clone().requires_grad_(True)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            loss = PairWiseLoss(pool='none', method=method)(x, ft)
        loss.backward()
        assert loss.dtype == torch.float32
        # computed in float32/float64 from the bfloat16 values: no bfloat16
        # rounding (relative 4e-3) in the value
        assert math.isclose(loss.item(), ref.item(), rel_tol=1e-5)
        assert x.grad.dtype == torch.bfloat16
        assert torch.allclose(x.grad.double(), ref_x.grad, rtol=1e-2,
                              atol=1e-2 * ref_x.grad.abs().max().item())
    # float64 inputs: float32 result
    loss = PairWiseLoss(pool='none')(fs.double(), ft.double())
    assert loss.dtype == torch.float32
    assert math.isclose(loss.item(), ref.item(), rel_tol=1e-6)


def _near_identical_cosines_one(B=2, Cs=16, Ct=64, H=24, W=24, seed=0):
    """The worst case of the Gram identity: post-ReLU features whose node
    cosines are all close to 1 (a large positive component per channel,
    small variations over the positions), the teacher's structure equal to
    the student's (its channels repeated: an isometry) up to a relative
    perturbation of 1e-4 of the student."""
    g = torch.Generator().manual_seed(seed)
    mean = 3 * torch.rand(B, Cs, 1, 1, generator=g) + 0.5
    z = (mean + 0.02 * torch.randn(B, Cs, H, W, generator=g)).relu()
    k = Ct // Cs
    ft = z.repeat_interleave(k, dim=1) / math.sqrt(k)
    fs = z * (1 + 1e-4 * torch.randn(z.shape, generator=g))
    return fs, ft


def test_exact_accuracy_in_the_worst_case(monkeypatch):
    import mmkd.models.losses.pair_wise_loss as pw
    fs, ft = _near_identical_cosines_one()
    g = ft.double() / ft.double().norm(dim=1, keepdim=True)
    cos = torch.einsum('bcm,bcn->bmn', g.flatten(2), g.flatten(2))
    assert cos.min() > 1 - 1e-3  # every pair of nodes
    ref, loss, value_err, grad_err = _errors(fs, ft, method='exact')
    assert ref < 1e-12  # structures nearly equal
    assert value_err < 1e-6, value_err
    assert grad_err < 1e-6, grad_err
    # the case is hard: the Gram identity alone (float64) loses the value
    monkeypatch.setattr(pw, 'CANCELLATION_LIMIT', float('-inf'))
    _, _, gram_value_err, _ = _errors(fs, ft, method='exact')
    assert gram_value_err > 1e-4, gram_value_err


@pytest.mark.parametrize('shape', [(2, 3), (6, 6)])
def test_qr_form_equals_naive(shape):
    """The QR form (used where the Gram identity cancels), on its own,
    against the float64 naive value and gradient; a 2x3 map has fewer
    nodes (6) than channels (3 + 5)."""
    from mmkd.models.losses.pair_wise_loss import _qr_form
    fs, ft = _feats(1, 3, 5, *shape, seed=7)
    gs = (fs / fs.norm(dim=1, keepdim=True)).double().flatten(2)[0]
    gt = (ft / ft.norm(dim=1, keepdim=True)).double().flatten(2)[0]
    x = gs.clone().requires_grad_(True)
    ref = (x.T @ x - gt.T @ gt).pow(2).sum()
    ref.backward()
    value, grad = _qr_form(gs, gt, need_grad=True)
    assert math.isclose(value.item(), ref.item(), rel_tol=1e-12)
    torch.testing.assert_close(4 * grad, x.grad, rtol=1e-10, atol=1e-12)
    assert _qr_form(gs, gt, need_grad=False)[1] is None
