import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmkd.models.discriminators import SKDDiscriminator
from mmkd.models.losses import (HolisticCriticLoss, HolisticGeneratorLoss,
                                gradient_penalty)
from mmkd.registry import MODELS

# a 3-block critic (32x32 inputs) keeps the tests fast
SMALL = dict(conv_dim=8, num_blocks=3, attention_after=(2, 3))


class LinearCritic(nn.Module):
    """D(x)_b = sum(w * x_b): its input gradient is w for every sample."""

    def __init__(self, shape, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = nn.Parameter(torch.randn(shape, generator=g) * 0.3)

    def forward(self, x):
        return (self.w * x).flatten(1).sum(1)


class QuadraticCritic(nn.Module):
    """D(x)_b = 0.5 * ||x_b||^2 (gradient x_b); records its inputs."""

    def __init__(self):
        super().__init__()
        self.inputs = []

    def forward(self, x):
        self.inputs.append(x.detach().clone())
        return 0.5 * x.flatten(1).pow(2).sum(1)


def _logits(shape=(3, 2, 4, 4), seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g), torch.randn(shape, generator=g)


def test_gp_linear_critic_exact_and_trains_critic():
    s, t = _logits()
    critic = LinearCritic(s.shape[1:])
    gp = gradient_penalty(critic, t, s)
    w_norm = critic.w.detach().norm()
    assert torch.allclose(gp, (w_norm - 1)**2, rtol=1e-5)
    # create_graph: d GP / d w = 2 (||w|| - 1) w / ||w||
    gp.backward()
    expected = 2 * (w_norm - 1) * critic.w.detach() / w_norm
    assert torch.allclose(critic.w.grad, expected, rtol=1e-4, atol=1e-6)


def test_gp_quadratic_critic_per_sample_interpolation():
    s, t = _logits(seed=1)
    critic = QuadraticCritic()
    torch.manual_seed(123)
    gp = gradient_penalty(critic, t, s)
    x_hat = critic.inputs[-1]
    # x_hat lies on the segment [fake, real] with one alpha per sample
    alphas = []
    for b in range(s.shape[0]):
        d = (t[b] - s[b]).flatten()
        alpha = ((x_hat[b].flatten() - s[b].flatten()) @ d) / (d @ d)
        assert 0 <= alpha <= 1
        assert torch.allclose(x_hat[b],
                              alpha * t[b] + (1 - alpha) * s[b],
                              atol=1e-5)
        alphas.append(float(alpha))
    assert len(set(round(a, 6) for a in alphas)) == len(alphas)
    # gradient of 0.5 ||x||^2 is x: GP = mean_b (||x_hat_b|| - 1)^2
    expected = (x_hat.flatten(1).norm(dim=1) - 1).pow(2).mean()
    assert torch.allclose(gp, expected, rtol=1e-5)


def test_gp_detaches_inputs():
    s, t = _logits()
    s.requires_grad_(True)
    t.requires_grad_(True)
    critic = QuadraticCritic()
    gradient_penalty(critic, t, s).backward()
    assert s.grad is None and t.grad is None


def test_gp_of_skd_critic_bn_is_wrt_logits():
    t, _ = _logits((2, 3, 32, 32), seed=2)
    critic = SKDDiscriminator(3, **SMALL).eval()  # deterministic
    gp = gradient_penalty(critic, t, t.clone())  # x_hat = t for any alpha
    x = t.clone().requires_grad_(True)
    g, = torch.autograd.grad(critic(x).sum(), x)
    expected = (g.flatten(1).norm(dim=1) - 1).pow(2).mean()
    assert torch.allclose(gp, expected, rtol=1e-4)


def test_gp_of_conditional_critic_is_wrt_concatenated_input():
    t, _ = _logits((2, 3, 32, 32), seed=3)
    image = torch.randn(2, 3, 100, 100)
    critic = SKDDiscriminator(3, input_mode='image_softmax', **SMALL)
    critic.eval()
    with torch.no_grad():
        for a in critic.attentions.values():
            a.gamma.fill_(0.5)
    gp = gradient_penalty(critic, t, t.clone(), image=image)
    x_in = torch.cat([
        F.interpolate(
            image, size=(32, 32), mode='bilinear', align_corners=True),
        F.softmax(t, dim=1)
    ],
                     dim=1).requires_grad_(True)
    g, = torch.autograd.grad(critic.forward_critic(x_in).sum(), x_in)
    expected = (g.flatten(1).norm(dim=1) - 1).pow(2).mean()
    assert torch.allclose(gp, expected, rtol=1e-4)
    # differs from the penalty on the logits' gradient
    x = t.clone().requires_grad_(True)
    g_logits, = torch.autograd.grad(critic(x, image).sum(), x)
    other = (g_logits.flatten(1).norm(dim=1) - 1).pow(2).mean()
    assert not torch.allclose(gp, other, rtol=1e-2)


def test_critic_loss_value_and_terms():
    s, t = _logits(seed=4)
    critic = LinearCritic(s.shape[1:], seed=1)
    loss_fn = HolisticCriticLoss(lambda_gp=10., loss_weight=0.1)
    w = critic.w.detach()
    d_t = (w * t).flatten(1).sum(1).mean()
    d_s = (w * s).flatten(1).sum(1).mean()
    gp = (w.norm() - 1)**2
    expected = 0.1 * (-d_t + d_s) + 0.1 * 10. * gp
    loss = loss_fn(critic, s, t)
    assert torch.allclose(loss, expected, rtol=1e-5)
    terms = loss_fn(critic, s, t, return_dict=True)
    assert set(terms) == {'loss_critic_wd', 'loss_critic_gp'}
    assert torch.allclose(terms['loss_critic_wd'],
                          0.1 * (d_s - d_t),
                          rtol=1e-5)
    assert torch.allclose(terms['loss_critic_gp'], gp, rtol=1e-5)


def test_critic_loss_trains_only_the_critic():
    s, t = _logits((2, 3, 32, 32), seed=5)
    s.requires_grad_(True)
    t.requires_grad_(True)
    critic = SKDDiscriminator(3, **SMALL)
    loss = HolisticCriticLoss()(critic, s, t)
    loss.backward()
    assert s.grad is None and t.grad is None
    assert critic.last.weight.grad.abs().sum() > 0


def test_critic_loss_returns_non_finite_instead_of_raising():
    s, t = _logits()

    def bad_critic(x):
        return x.flatten(1).sum(1) * float('nan')

    loss = HolisticCriticLoss()(bad_critic, s, t)
    assert not torch.isfinite(loss)


def test_generator_loss_value_and_gradient():
    s, _ = _logits(seed=6)
    critic = LinearCritic(s.shape[1:], seed=2)
    s.requires_grad_(True)
    loss = HolisticGeneratorLoss(loss_weight=0.1)(critic, s)
    w = critic.w.detach()
    expected = -0.1 * (w * s.detach()).flatten(1).sum(1).mean()
    assert torch.allclose(loss, expected, rtol=1e-5)
    loss.backward()
    # d/ds_b of -0.1 * mean_b sum(w * s_b) = -0.1 * w / B
    expected_grad = (-0.1 * w / s.shape[0]).expand_as(s)
    assert torch.allclose(s.grad, expected_grad, rtol=1e-5)


def test_image_is_passed_to_critic():
    s, t = _logits((2, 3, 32, 32), seed=7)
    image = torch.randn(2, 3, 32, 32)
    critic = SKDDiscriminator(3, input_mode='image_softmax', **SMALL)
    with pytest.raises(ValueError, match='image'):
        HolisticGeneratorLoss()(critic, s)
    loss = HolisticGeneratorLoss()(critic, s, image)
    assert loss.dim() == 0 and torch.isfinite(loss)


def test_bad_input_and_registry():
    s, t = _logits()
    with pytest.raises(ValueError, match='same shape'):
        HolisticCriticLoss()(QuadraticCritic(), s, t[:, :1])
    with pytest.raises(ValueError, match='same shape'):
        gradient_penalty(QuadraticCritic(), s, t[:1])
    assert isinstance(MODELS.build(dict(type='HolisticCriticLoss')),
                      HolisticCriticLoss)
    gen = MODELS.build(dict(type='HolisticGeneratorLoss', loss_weight=0.2))
    assert isinstance(gen, HolisticGeneratorLoss) and gen.loss_weight == 0.2
