"""MGDLoss: the authors' MSELoss(reduction='sum') / N * alpha, summed over
levels (yzd-v/MGD, det/mmdet/distillation/losses/mgd.py)."""
import pytest
import torch

from mmkd.models.losses import MGDLoss


def reference(gen, teacher, alpha, loss_weight=1.0):
    """Element by element, float64: sum_l sum (G - T)^2 / N * alpha."""
    total = 0.
    for g, t in zip(gen, teacher):
        total = total + ((g.double() - t.double())**2).sum() / g.shape[0]
    return loss_weight * alpha * total


@pytest.mark.parametrize('alpha,loss_weight', [(2e-5, 1.0), (7e-5, 3.0)])
def test_value_and_gradient_against_the_formula(alpha, loss_weight):
    torch.manual_seed(0)
    shapes = [(3, 5, 8, 8), (3, 5, 4, 4), (3, 5, 2, 2)]
    gen = [
        torch.randn(s, dtype=torch.float64, requires_grad=True) for s in shapes
    ]
    teacher = [
        torch.randn(s, dtype=torch.float64, requires_grad=True) for s in shapes
    ]
    loss = MGDLoss(alpha, loss_weight)(gen, teacher)
    expected = reference(gen, teacher, alpha, loss_weight)
    assert abs(loss.item() - expected.item()) <= 1e-10 * abs(expected.item())
    # d/dG = 2 (G - T) / N * alpha * loss_weight; the teacher gets nothing
    loss.backward()
    for g, t in zip(gen, teacher):
        want = 2 * (g - t).detach() / 3 * alpha * loss_weight
        assert (g.grad - want).abs().max() <= 1e-10 * want.abs().max()
        assert t.grad is None
    # one tensor = a list of one
    single = MGDLoss(alpha, loss_weight)(gen[0], teacher[0])
    expected = reference(gen[:1], teacher[:1], alpha, loss_weight)
    assert abs(single.item() - expected.item()) <= 1e-10 * expected.item()


def test_bf16_inputs_give_a_float32_loss():
    torch.manual_seed(0)
    g, t = torch.randn(2, 8, 6, 6), torch.randn(2, 8, 6, 6)
    full = MGDLoss(2e-5)(g, t)
    low = MGDLoss(2e-5)(g.bfloat16(), t.bfloat16())
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, full, rtol=1e-2, atol=0)


def test_bad_input_says_what_to_fix():
    g = torch.zeros(2, 4, 8, 8)
    with pytest.raises(ValueError, match='same number of levels'):
        MGDLoss(1.0)([g], g)
    with pytest.raises(ValueError, match='same levels'):
        MGDLoss(1.0)([g, g], [g])
    with pytest.raises(ValueError, match='MGDConnector whose `targets`'):
        MGDLoss(1.0)(g, torch.zeros(2, 4, 4, 4))
    with pytest.raises(ValueError, match='alpha'):
        MGDLoss(-1.0)
