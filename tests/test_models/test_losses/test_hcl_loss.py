import pytest
import torch

from mmkd.models.losses import HCLLoss
from mmkd.registry import MODELS


def _pool(x, size):
    """Average pool to (size, size) by reshaping; needs size | H, size | W."""
    n, c, h, w = x.shape
    return x.reshape(n, c, size, h // size, size, w // size).mean(dim=(3, 5))


def _mse(a, b):
    return ((a - b)**2).sum() / a.numel()


def _reference(fs, ft):
    """HCL of one stage with the weights written out per map height."""
    h = fs.shape[2]
    if h >= 5:
        weights = {None: 1, 4: 1 / 2, 2: 1 / 4, 1: 1 / 8}
    elif h == 4:
        weights = {None: 1, 2: 1 / 2, 1: 1 / 4}
    elif h == 2:
        weights = {None: 1, 1: 1 / 2}
    elif h == 1:
        weights = {None: 1}
    else:
        raise NotImplementedError
    total = 0.
    for size, wt in weights.items():
        a, b = (fs, ft) if size is None else (_pool(fs, size),
                                              _pool(ft, size))
        total = total + wt * _mse(a, b)
    return total / sum(weights.values())


@pytest.mark.parametrize('size', [8, 4, 2, 1])
def test_single_stage_matches_explicit_weights(size):
    torch.manual_seed(0)
    fs = torch.randn(2, 3, size, size)
    ft = torch.randn(2, 3, size, size)
    loss = HCLLoss()(fs, ft)
    assert torch.allclose(loss, _reference(fs, ft), rtol=1e-5, atol=1e-7)


def test_total_weight_values():
    # the normalisers named by the spec: 1.875 / 1.75 / 1.5 / 1
    torch.manual_seed(0)
    fs = torch.randn(1, 2, 8, 8)
    ft = torch.zeros(1, 2, 8, 8)
    expected = (_mse(fs, ft) + _mse(_pool(fs, 4), _pool(ft, 4)) / 2 +
                _mse(_pool(fs, 2), _pool(ft, 2)) / 4 +
                _mse(_pool(fs, 1), _pool(ft, 1)) / 8) / 1.875
    assert torch.allclose(HCLLoss()(fs, ft), expected, rtol=1e-5)


def test_stages_are_summed_and_weighted():
    torch.manual_seed(1)
    shapes = [(2, 4, 8, 8), (2, 6, 4, 4), (2, 8, 2, 2), (2, 8, 1, 1)]
    fs = [torch.randn(s) for s in shapes]
    ft = [torch.randn(s) for s in shapes]
    expected = sum(_reference(a, b) for a, b in zip(fs, ft))
    assert torch.allclose(HCLLoss()(fs, ft), expected, rtol=1e-5)
    assert torch.allclose(
        HCLLoss(loss_weight=2.5)(fs, ft), 2.5 * expected, rtol=1e-5)


def test_non_square_uses_height_for_skipping():
    torch.manual_seed(2)
    # h = 8, w = 16: all three pooled levels are used (weights / 1.875)
    fs, ft = torch.randn(2, 3, 8, 16), torch.randn(2, 3, 8, 16)
    assert torch.allclose(
        HCLLoss()(fs, ft), _reference(fs, ft), rtol=1e-5)
    # h = 2, w = 8: as the authors, only l < h is used -> {1, 1x1: 1/2}
    fs, ft = torch.randn(2, 3, 2, 8), torch.randn(2, 3, 2, 8)
    expected = (_mse(fs, ft) + _mse(fs.mean((2, 3)), ft.mean((2, 3))) / 2)
    assert torch.allclose(HCLLoss()(fs, ft), expected / 1.5, rtol=1e-5)


def test_custom_levels_halve_over_used_levels():
    torch.manual_seed(3)
    fs, ft = torch.randn(1, 2, 8, 8), torch.randn(1, 2, 8, 8)
    # levels (8, 2): 8 >= h is skipped, 2 gets weight 1/2
    expected = (_mse(fs, ft) + _mse(_pool(fs, 2), _pool(ft, 2)) / 2) / 1.5
    assert torch.allclose(
        HCLLoss(levels=(8, 2))(fs, ft), expected, rtol=1e-5)


def test_gradient_reaches_only_the_student():
    torch.manual_seed(4)
    fs = [torch.randn(2, 3, 4, 4, requires_grad=True),
          torch.randn(2, 3, 1, 1, requires_grad=True)]
    ft = [torch.randn(2, 3, 4, 4, requires_grad=True),
          torch.randn(2, 3, 1, 1, requires_grad=True)]
    HCLLoss()(fs, ft).backward()
    for t in fs:
        assert t.grad is not None and t.grad.abs().sum() > 0
    for t in ft:
        assert t.grad is None


@pytest.mark.parametrize('student_cl', [True, False])
@pytest.mark.parametrize('hw', [(8, 8), (8, 4)])
def test_mixed_layouts_same_values_gradient_in_student_layout(
        student_cl, hw):
    # a channels-last student map against a contiguous teacher map (and the
    # reverse): value and gradient as the reference on contiguous copies,
    # and the gradient has the student map's memory format
    torch.manual_seed(5)
    cl = torch.channels_last
    fs0 = torch.randn(2, 3, *hw, dtype=torch.float64)
    ft0 = torch.randn(2, 3, *hw, dtype=torch.float64)
    fs = (fs0.contiguous(memory_format=cl) if student_cl else
          fs0.clone()).requires_grad_()
    ft = ft0 if student_cl else ft0.contiguous(memory_format=cl)
    loss = HCLLoss()(fs, ft)
    (grad, ) = torch.autograd.grad(loss, fs)
    ref_in = fs0.clone().requires_grad_()
    ref = _reference(ref_in, ft0)
    (ref_grad, ) = torch.autograd.grad(ref, ref_in)
    assert torch.allclose(loss, ref, rtol=1e-10, atol=0)
    assert torch.allclose(grad, ref_grad, rtol=1e-10, atol=1e-15)
    if student_cl:
        assert grad.is_contiguous(memory_format=cl)
        assert not grad.is_contiguous()
    else:
        assert grad.is_contiguous()


def test_zero_when_equal():
    x = torch.randn(2, 3, 8, 8)
    assert HCLLoss()([x], [x.clone()]).item() == 0


def test_errors():
    loss = HCLLoss()
    with pytest.raises(ValueError, match='shape'):
        loss(torch.randn(1, 2, 4, 4), torch.randn(1, 2, 4, 5))
    with pytest.raises(ValueError, match='stages'):
        loss([torch.randn(1, 2, 4, 4)], [torch.randn(1, 2, 4, 4)] * 2)
    with pytest.raises(ValueError, match='both'):
        loss(torch.randn(1, 2, 4, 4), [torch.randn(1, 2, 4, 4)])
    with pytest.raises(ValueError, match='levels'):
        HCLLoss(levels=(4, 0))


def test_registry_build():
    loss = MODELS.build(dict(type='HCLLoss', loss_weight=3.0))
    assert isinstance(loss, HCLLoss) and loss.loss_weight == 3.0
