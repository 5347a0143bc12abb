import pytest
import torch
import torch.nn.functional as F

import mmkd.models.utils.relation_kl as relation_kl
from mmkd.models.utils import relation_kl_sum


def kl_reference(left_S, right_S, left_T, right_T, group):
    """sum over rows and groups of sum_m p_t (log p_t - log p_s), written
    out on the whole relation matrices."""
    s = (left_S @ right_S.T).reshape(-1, group)
    t = (left_T @ right_T.T).reshape(-1, group)
    log_p_t = t.log_softmax(1)
    return (log_p_t.exp() * (log_p_t - s.log_softmax(1))).sum()


def rel(a, b):
    return float((a - b).detach().norm() / b.detach().norm())


def factors(R, M, C_s, C_t, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(2 * torch.randn(n, c, generator=g, dtype=dtype))
            for n, c in ((R, C_s), (M, C_s), (R, C_t), (M, C_t))]


@pytest.mark.parametrize('teacher_block,block,group', [
    (2**24, 2**18, None),  # one teacher block, one softmax block
    (36, 12, None),  # teacher blocks of 3 rows (4 blocks, the last of 1),
    # softmax blocks of 1 row
    (48, 24, 6),  # groups of 6 columns: 2 per row
    (12, 12, 3),
])
def test_value_and_gradients_match_the_formula(monkeypatch, teacher_block,
                                               block, group):
    monkeypatch.setattr(relation_kl, 'TEACHER_BLOCK_ELEMENTS', teacher_block)
    monkeypatch.setattr(relation_kl, 'BLOCK_ELEMENTS', block)
    left_S, right_S, left_T, right_T = factors(10, 12, 4, 5)
    for x in (left_S, right_S, left_T, right_T):
        x.requires_grad_(True)
    value = relation_kl_sum(left_S, right_S, left_T, right_T, group)
    ref = kl_reference(left_S, right_S, left_T.detach(), right_T.detach(),
                       group or 12)
    assert value.dtype == torch.float64
    assert rel(value, ref) <= 1e-12
    # F.kl_div (the authors' call) agrees with the written-out reference
    s = (left_S @ right_S.T).reshape(-1, group or 12)
    t = (left_T @ right_T.T).reshape(-1, group or 12)
    assert rel(F.kl_div(s.log_softmax(1), t.softmax(1), reduction='sum'),
               ref) <= 1e-12
    grads = torch.autograd.grad(2.5 * value, (left_S, right_S))
    grads_ref = torch.autograd.grad(2.5 * ref, (left_S, right_S))
    for g, g_ref in zip(grads, grads_ref):
        assert rel(g, g_ref) <= 1e-12
    (3 * relation_kl_sum(left_S, right_S, left_T, right_T, group)).backward()
    assert left_T.grad is None and right_T.grad is None  # teacher: nothing


def test_one_factor_on_both_sides_gets_both_gradients():
    """CIRKD's mini-batch relations: S = (x / tau) x^T."""
    x, _, y, _ = factors(8, 8, 3, 4)
    x.requires_grad_(True)
    value = relation_kl_sum(x / 0.1, x, y / 0.1, y, group=4)
    grad, = torch.autograd.grad(value, x)
    ref = kl_reference(x / 0.1, x, y / 0.1, y, 4)
    grad_ref, = torch.autograd.grad(ref, x)
    assert rel(value, ref) <= 1e-12 and rel(grad, grad_ref) <= 1e-12


def test_large_logits_stay_finite():
    left = torch.tensor([[1000., 0., -1000.]], dtype=torch.float64)
    eye = torch.eye(3, dtype=torch.float64)
    left_S = left.clone().requires_grad_(True)
    left_T = torch.tensor([[0., 1000., -1000.]], dtype=torch.float64)
    value = relation_kl_sum(left_S, eye, left_T, eye)
    # p_t is one-hot at column 1, where log p_s is -1000: KL = 1000
    assert abs(float(value) - 1000.) <= 1e-9
    grad, = torch.autograd.grad(value, left_S)
    assert torch.allclose(grad, torch.tensor([[1., -1., 0.]],
                                             dtype=torch.float64))


def test_bfloat16_autocast_gives_a_float32_value_near_the_float32_one():
    left_S, right_S, left_T, right_T = factors(64, 48, 8, 8, torch.float32)
    left_S.requires_grad_(True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        value = relation_kl_sum(left_S, right_S, left_T, right_T)
    assert value.dtype == torch.float32
    exact = kl_reference(left_S, right_S, left_T, right_T, 48)
    assert rel(value, exact) <= 5e-2  # bf16 relations, float32 softmax
    value.backward()
    assert left_S.grad.dtype == torch.float32
    grad_ref, = torch.autograd.grad(exact, left_S)
    assert rel(left_S.grad, grad_ref) <= 5e-2


def test_bad_shapes_are_refused():
    left_S, right_S, left_T, right_T = factors(4, 6, 3, 5)
    with pytest.raises(ValueError, match='group dividing M'):
        relation_kl_sum(left_S, right_S, left_T, right_T, group=4)
    with pytest.raises(ValueError, match=r'\(R, C_s\)'):
        relation_kl_sum(left_S, right_S[:, :2], left_T, right_T)
    with pytest.raises(ValueError, match=r'\(R, C_t\)'):
        relation_kl_sum(left_S, right_S, left_T[:3], right_T)
    for group in (0, -3):
        with pytest.raises(ValueError, match='positive group'):
            relation_kl_sum(left_S, right_S, left_T, right_T, group=group)
    with pytest.raises(ValueError, match='R, M > 0'):
        relation_kl_sum(left_S[:0], right_S, left_T[:0], right_T)


def test_a_second_derivative_raises():
    left_S, right_S, left_T, right_T = factors(3, 4, 2, 2)
    left_S.requires_grad_(True)
    grad, = torch.autograd.grad(
        relation_kl_sum(left_S, right_S, left_T, right_T), left_S,
        create_graph=True)
    # no silent wrong second derivative: the gradient has no graph
    with pytest.raises(RuntimeError,
                       match='once_differentiable|does not require grad'):
        torch.autograd.grad(grad.sum(), left_S)
