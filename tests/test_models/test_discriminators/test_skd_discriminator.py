import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import parametrize

from mmkd.models.discriminators import SAGANSelfAttention, SKDDiscriminator
from mmkd.registry import MODELS


def _sn_convs(model):
    return [
        m for m in model.modules()
        if isinstance(m, nn.Conv2d) and parametrize.is_parametrized(m)
    ]


def test_authors_layout_and_64x64_output():
    torch.manual_seed(0)
    model = SKDDiscriminator(19)  # conv_dim 64, 4 blocks, logits_bn
    assert isinstance(model.preprocess, nn.BatchNorm2d)
    assert model.preprocess.num_features == 19
    convs = _sn_convs(model)
    assert [tuple(c.weight.shape) for c in convs] == [(64, 19, 4, 4),
                                                      (128, 64, 4, 4),
                                                      (256, 128, 4, 4),
                                                      (512, 256, 4, 4)]
    assert all(c.stride == (2, 2) and c.padding == (1, 1) for c in convs)
    assert not parametrize.is_parametrized(model.last)
    assert tuple(model.last.weight.shape) == (1, 512, 4, 4)
    assert model.last.padding == (0, 0)
    assert set(model.attentions) == {'3', '4'}
    assert model.attentions['3'].value_conv.in_channels == 256
    assert model.attentions['4'].query_conv.out_channels == 512 // 8
    out = model(torch.randn(2, 19, 64, 64))
    assert out.shape == (2, 1, 1, 1)


def test_128x128_output_and_gradient_to_logits():
    model = SKDDiscriminator(5, conv_dim=8)
    x = torch.randn(2, 5, 128, 128, requires_grad=True)
    out = model(x)
    assert out.shape == (2, 1, 5, 5)
    out.mean().backward()
    assert x.grad.abs().sum() > 0


def test_leaky_relu_slope():
    model = SKDDiscriminator(5, conv_dim=8)
    acts = [m for m in model.modules() if isinstance(m, nn.LeakyReLU)]
    assert len(acts) == 4
    assert all(a.negative_slope == 0.1 for a in acts)


def test_conditional_input():
    torch.manual_seed(0)
    model = SKDDiscriminator(4, conv_dim=8, input_mode='image_softmax')
    assert model.preprocess is None
    assert _sn_convs(model)[0].in_channels == 3 + 4
    logits = torch.randn(2, 4, 64, 64)
    image = torch.randn(2, 3, 97, 130)
    x_in = model.prepare_input(logits, image)
    assert x_in.shape == (2, 7, 64, 64)
    resized = F.interpolate(image,
                            size=(64, 64),
                            mode='bilinear',
                            align_corners=True)
    assert torch.allclose(x_in[:, :3], resized)
    # corners are kept exactly with align_corners=True
    assert torch.allclose(x_in[:, :3, 0, 0], image[:, :, 0, 0])
    assert torch.allclose(x_in[:, :3, -1, -1], image[:, :, -1, -1])
    assert torch.allclose(x_in[:, 3:], torch.softmax(logits, dim=1))
    assert model(logits, image).shape == (2, 1, 1, 1)
    with pytest.raises(ValueError, match='image'):
        model(logits)
    with pytest.raises(ValueError, match='image'):
        model(logits, torch.randn(2, 1, 64, 64))


def test_logits_mode_input_is_raw_logits():
    model = SKDDiscriminator(4, conv_dim=8)
    logits = torch.randn(2, 4, 64, 64)
    assert model.prepare_input(logits) is logits


def test_self_attention_identity_at_init_and_formula():
    torch.manual_seed(0)
    attn = SAGANSelfAttention(16)
    assert attn.gamma.item() == 0
    x = torch.randn(2, 16, 3, 4)
    assert torch.equal(attn(x), x)
    with torch.no_grad():
        attn.gamma.fill_(0.7)
    out, a = attn(x, return_attention=True)
    assert a.shape == (2, 12, 12)
    # naive per-position formula
    q = attn.query_conv(x).flatten(2)
    k = attn.key_conv(x).flatten(2)
    v = attn.value_conv(x).flatten(2)
    xf = x.flatten(2)
    for b in range(2):
        for i in range(12):
            e = torch.stack([q[b, :, i] @ k[b, :, j] for j in range(12)])
            w = torch.softmax(e, dim=0)
            o = sum(w[j] * v[b, :, j] for j in range(12))
            assert torch.allclose(out.flatten(2)[b, :, i],
                                  0.7 * o + xf[b, :, i],
                                  atol=1e-5)
    with pytest.raises(ValueError):
        SAGANSelfAttention(4)


def test_discriminator_attention_is_identity_at_init():
    model = SKDDiscriminator(3, conv_dim=8)
    for attn in model.attentions.values():
        assert attn.gamma.item() == 0
    model.eval()  # fixed BN statistics and spectral-norm vectors
    x = torch.randn(1, 3, 64, 64)
    # bypass the attentions: same output at init
    h = model.preprocess(x)
    for block in model.blocks:
        h = block(h)
    ref = model.last(h)
    assert torch.allclose(model(x), ref, atol=1e-6)


def test_spectral_norm_keeps_sigma_near_one():
    torch.manual_seed(0)
    model = SKDDiscriminator(6, conv_dim=8)
    with torch.no_grad():  # make the raw weights far from unit norm
        for conv in _sn_convs(model):
            conv.parametrizations.weight.original.mul_(5.0)
    model.train()
    x = torch.randn(2, 6, 64, 64)
    for _ in range(5):
        model(x)
    model.eval()  # read weights without another power iteration
    for conv in _sn_convs(model):
        raw = conv.parametrizations.weight.original.flatten(1)
        assert torch.linalg.matrix_norm(raw, ord=2) > 2
        w = conv.weight.flatten(1)
        sigma = torch.linalg.matrix_norm(w, ord=2)
        assert 0.99 < sigma < 1.1, sigma


def test_bad_arguments():
    with pytest.raises(ValueError, match='too small'):
        SKDDiscriminator(3, conv_dim=8)(torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match='logits'):
        SKDDiscriminator(3, conv_dim=8)(torch.randn(1, 4, 64, 64))
    with pytest.raises(ValueError):
        SKDDiscriminator(3, input_mode='logits')
    with pytest.raises(ValueError):
        SKDDiscriminator(3, num_blocks=3, attention_after=(3, 4))


def test_build_from_registry():
    model = MODELS.build(
        dict(type='SKDDiscriminator',
             in_channels=19,
             conv_dim=8,
             input_mode='image_softmax'))
    assert isinstance(model, SKDDiscriminator)
    assert _sn_convs(model)[0].in_channels == 22


def _l2n(x):
    return x / (np.linalg.norm(x) + 1e-12)


def _sn_state(conv):
    """float64 numpy copies of (W as a matrix, u, v)."""
    p = conv.parametrizations.weight
    return (p.original.detach().double().flatten(1).numpy().copy(),
            p[0]._u.double().numpy().copy(), p[0]._v.double().numpy().copy())


def test_power_iteration_in_the_authors_order():
    torch.manual_seed(0)
    model = SKDDiscriminator(19, conv_dim=8).train()
    convs = _sn_convs(model)
    before = [_sn_state(c) for c in convs]
    model(torch.randn(2, 19, 64, 64))  # one power iteration per conv
    model.eval()  # read the weights without another iteration
    rel_diff = []
    for conv, (W, u0, v0) in zip(convs, before):
        # authors' networks/spectral.py: v from u, then u from v
        v = _l2n(W.T @ u0)
        u = _l2n(W @ v)
        sigma = u @ W @ v
        _, u_new, v_new = _sn_state(conv)
        np.testing.assert_allclose(u_new, u, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(v_new, v, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(conv.weight.detach().double().flatten(1),
                                   W / sigma, rtol=1e-5, atol=1e-8)
        # torch's built-in order (u from v, then v from u) from the same
        # vectors gives another normalising factor
        u_t = _l2n(W @ v0)
        v_t = _l2n(W.T @ u_t)
        rel_diff.append(abs(u_t @ W @ v_t - sigma) / sigma)
    assert max(rel_diff) > 1e-3, rel_diff


def test_spectral_norm_gradient_through_sigma_only_via_w():
    torch.manual_seed(0)
    # float64 throughout: the two terms of the gradient cancel to a few
    # parts in 1e4 of their size, more than float32 keeps
    conv = _sn_convs(SKDDiscriminator(3, conv_dim=8).double().eval())[1]
    W, u, v = _sn_state(conv)
    R = np.random.default_rng(0).standard_normal(W.shape)
    (conv.weight.flatten(1) * torch.from_numpy(R)).sum().backward()
    # d/dW sum(R * W / sigma), sigma = u^T W v with u, v constants
    sigma = u @ W @ v
    expected = R / sigma - (R * W).sum() / sigma**2 * np.outer(u, v)
    grad = conv.parametrizations.weight.original.grad.flatten(1)
    np.testing.assert_allclose(grad, expected, rtol=1e-9, atol=1e-9)


def test_spectral_norm_vectors_fixed_in_eval_and_resumed():
    torch.manual_seed(0)
    model = SKDDiscriminator(4, conv_dim=8)
    x = torch.randn(2, 4, 64, 64)
    for _ in range(3):
        model(x)
    model.eval()
    state = [_sn_state(c)[1:] for c in _sn_convs(model)]
    out = model(x)
    for _ in range(2):
        torch.testing.assert_close(model(x), out)
    for conv, (u, v) in zip(_sn_convs(model), state):
        np.testing.assert_array_equal(_sn_state(conv)[1], u)
        np.testing.assert_array_equal(_sn_state(conv)[2], v)
    # the vectors are in the state dict: a new critic resumes from them
    keys = model.state_dict().keys()
    assert 'blocks.0.0.parametrizations.weight.0._u' in keys
    assert 'blocks.0.0.parametrizations.weight.0._v' in keys
    torch.manual_seed(1)
    resumed = SKDDiscriminator(4, conv_dim=8)
    resumed.load_state_dict(model.state_dict())
    torch.testing.assert_close(resumed.eval()(x), out)
    model.train()
    resumed.train()
    torch.testing.assert_close(resumed(x), model(x))  # same next iteration


def test_spectral_norm_loads_checkpoints_of_torchs_parametrization():
    # mmkd's earlier critic used torch.nn.utils.parametrizations.spectral_norm
    from torch.nn.utils.parametrizations import spectral_norm as torch_sn
    torch.manual_seed(0)
    old = torch_sn(nn.Conv2d(3, 8, 4, 2, 1))
    old(torch.randn(1, 3, 8, 8))
    ours = _sn_convs(SKDDiscriminator(3, conv_dim=8))[0]
    assert set(ours.state_dict()) == set(old.state_dict())
    ours.load_state_dict(old.state_dict())
    old.eval()
    ours.eval()
    torch.testing.assert_close(ours.weight, old.weight)


def test_too_small_input_names_the_knobs():
    with pytest.raises(ValueError) as err:
        SKDDiscriminator(3, conv_dim=8)(torch.randn(1, 3, 48, 64))
    msg = str(err.value)
    assert '48x64' in msg and 'at least 64' in msg
    for knob in ('crop size', 'output stride', 'num_blocks'):
        assert knob in msg
    # with the fewer blocks it suggests, the same map is scored
    assert SKDDiscriminator(3, conv_dim=8, num_blocks=3,
                            attention_after=(3, ))(torch.randn(
                                1, 3, 48, 64)).shape == (1, 1, 3, 5)
