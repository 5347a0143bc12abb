import pytest
import torch
import torch.nn.functional as F

import mmkd.models.utils.rowwise_kl as rowwise_kl
from mmkd.models.utils import rowwise_kl_sum


def kl_reference(logits_S, logits_T):
    """sum_r sum_m p_t (log p_t - log p_s), written out."""
    log_p_t = logits_T.log_softmax(1)
    return (log_p_t.exp() * (log_p_t - logits_S.log_softmax(1))).sum()


def rel(a, b):
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize('block', [1, 12, 2**18])
def test_value_and_gradient_match_the_formula(monkeypatch, block):
    # blocks of 1 row, of 3 rows with a 1-row remainder (12 // 4), and one
    # block for all
    monkeypatch.setattr(rowwise_kl, 'BLOCK_ELEMENTS', block)
    g = torch.Generator().manual_seed(0)
    s = (4 * torch.randn(7, 4, generator=g, dtype=torch.float64)
         ).requires_grad_(True)
    t = (4 * torch.randn(7, 4, generator=g, dtype=torch.float64)
         ).requires_grad_(True)
    value = rowwise_kl_sum(s, t)
    ref = kl_reference(s, t.detach())
    assert value.dtype == torch.float64
    assert rel(value, ref) <= 1e-12
    # F.kl_div agrees with the written-out reference
    assert rel(F.kl_div(s.log_softmax(1), t.softmax(1), reduction='sum'),
               ref) <= 1e-12
    g_value, = torch.autograd.grad(2.5 * value, s)
    g_ref, = torch.autograd.grad(2.5 * ref, s)
    assert rel(g_value, g_ref) <= 1e-12
    (3 * rowwise_kl_sum(s, t)).backward()
    assert t.grad is None  # the teacher's side gets no gradient


def test_large_logits_stay_finite():
    s = torch.tensor([[1000., 0., -1000.]], dtype=torch.float64,
                     requires_grad=True)
    t = torch.tensor([[0., 1000., -1000.]], dtype=torch.float64)
    value = rowwise_kl_sum(s, t)
    # p_t is one-hot at 1, log p_s there is -1000: KL = 1000
    assert abs(float(value) - 1000.) <= 1e-9
    grad, = torch.autograd.grad(value, s)
    assert torch.allclose(grad, torch.tensor([[1., -1., 0.]],
                                             dtype=torch.float64))


def test_bfloat16_inputs_give_a_float32_value_near_the_float32_one():
    g = torch.Generator().manual_seed(1)
    s = 3 * torch.randn(64, 50, generator=g)
    t = 3 * torch.randn(64, 50, generator=g)
    s16 = s.bfloat16().requires_grad_(True)
    value = rowwise_kl_sum(s16, t.bfloat16())
    assert value.dtype == torch.float32
    exact = kl_reference(s16.detach().float(), t.bfloat16().float())
    assert rel(value, exact) <= 1e-5  # float32 arithmetic on bf16 inputs
    assert rel(value, kl_reference(s, t)) <= 2e-2  # bf16 rounding of inputs
    value.backward()
    assert s16.grad.dtype == torch.bfloat16


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match=r'\(R, M\) logit matrices'):
        rowwise_kl_sum(torch.zeros(3, 4), torch.zeros(3, 5))
    with pytest.raises(ValueError, match=r'\(R, M\)'):
        rowwise_kl_sum(torch.zeros(2, 3, 4), torch.zeros(2, 3, 4))
