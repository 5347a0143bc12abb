"""MGDConnector + MGDLoss against the authors' get_dis_loss written out in
float64, and the semantics of the random mask (yzd-v/MGD,
{cls,det,seg}/.../losses/mgd.py)."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.runner import set_random_seed

from mmkd.models.connectors import MGDConnector
from mmkd.models.losses import MGDLoss


def reference_mgd(S, T, weights, lam, mask_type, alpha, device='cpu'):
    """The authors' MGD loss of one level, from the copied weights: align
    (1x1 conv) if given, the mask drawn as theirs (torch.rand, then
    thresholded; they draw on the CPU, mmkd on the feature's ``device``),
    the generation block, then MSELoss(reduction='sum') / N * alpha."""
    if weights['align'] is not None:
        S = F.conv2d(S, *weights['align'])
    N, C, H, W = T.shape
    if mask_type == 'spatial':  # det/seg: masked where u > 1 - lambda
        mat = torch.rand((N, 1, H, W), device=device)
        mat = torch.where(mat > 1 - lam, 0, 1)
    else:  # cls: masked where u < lambda
        mat = torch.rand((N, C, 1, 1), device=device)
        mat = torch.where(mat < lam, 0, 1)
    masked = torch.mul(S, mat)
    w1, b1, w2, b2 = weights['generation']
    new = F.conv2d(
        F.relu(F.conv2d(masked, w1, b1, padding=1)), w2, b2, padding=1)
    return ((new - T)**2).sum() / N * alpha


def copied_weights(connector):
    """Leaf float64 copies of every level's weights."""
    out = []
    for level in connector.levels:
        leaf = [
            p.detach().clone().requires_grad_(True)
            for p in level.parameters()
        ]
        out.append(
            dict(
                align=leaf[:2] if level.align is not None else None,
                generation=leaf[-4:]))
    return out


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


LEVELS = [  # (student channels, teacher channels, H, W)
    [(6, 6, 8, 10)],  # one tap, no align
    [(4, 6, 8, 10)],  # one tap, 1x1 align
    [(5, 5, 8, 8), (5, 5, 4, 4), (3, 5, 2, 3)],  # FPN-like list
]


@pytest.mark.parametrize('mask_type,lam,alpha', [('spatial', 0.65, 2e-5),
                                                 ('spatial', 0.45, 5e-7),
                                                 ('channel', 0.15, 7e-5)])
@pytest.mark.parametrize('levels', LEVELS, ids=['same', 'align', 'list'])
def test_matches_the_authors_formula_value_and_gradient(
        levels, mask_type, lam, alpha):
    torch.manual_seed(0)
    is_list = len(levels) > 1
    ins = [c_s for c_s, _, _, _ in levels]
    outs = [c_t for _, c_t, _, _ in levels]
    connector = MGDConnector(
        ins if is_list else ins[0],
        outs if is_list else outs[0],
        mask_ratio=lam,
        mask_type=mask_type).double()
    loss_fn = MGDLoss(alpha=alpha)
    S = [
        torch.randn(3, c, h, w, dtype=torch.float64, requires_grad=True)
        for c, _, h, w in levels
    ]
    T = [
        torch.randn(3, c, h, w, dtype=torch.float64, requires_grad=True)
        for _, c, h, w in levels
    ]

    torch.manual_seed(7)  # the same draws for both computations
    loss = loss_fn(connector(S if is_list else S[0]), T if is_list else T[0])
    weights = copied_weights(connector)
    torch.manual_seed(7)
    expected = sum(
        reference_mgd(s, t, w, lam, mask_type, alpha)
        for s, t, w in zip(S, T, weights))
    assert loss.dtype == torch.float64
    assert rel_err(loss, expected) <= 1e-10

    params = list(connector.parameters())
    got = torch.autograd.grad(loss, S + params)
    ref_params = [
        p for w in weights for p in ((w['align'] or []) + w['generation'])
    ]
    want = torch.autograd.grad(expected, S + ref_params)
    for g, w in zip(got, want):
        assert g.abs().max() > 0 and rel_err(g, w) <= 1e-10

    # never the teacher: its features are detached inside the loss
    loss = loss_fn(connector(S if is_list else S[0]), T if is_list else T[0])
    loss.backward()
    assert all(t.grad is None for t in T)
    assert all(s.grad is not None and s.grad.abs().sum() > 0 for s in S)
    assert all(p.grad is not None and p.grad.abs().sum() > 0
               for level in connector.levels
               for p in level.generation.parameters())


def test_bf16_autocast_gives_a_float32_loss_close_to_float32():
    torch.manual_seed(0)
    connector = MGDConnector(16, 32, mask_ratio=0.65)
    loss_fn = MGDLoss(alpha=2e-5)
    S, T = torch.randn(2, 16, 12, 12), torch.randn(2, 32, 12, 12)
    torch.manual_seed(3)
    full = loss_fn(connector(S), T)
    torch.manual_seed(3)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        generated = connector(S)
        low = loss_fn(generated, T.bfloat16())
    assert generated.dtype == torch.bfloat16
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, full, rtol=2e-2, atol=0)


def masked_input(connector, x):
    """What enters the generation block (the masked, aligned feature)."""
    seen = []
    handle = connector.levels[0].generation.register_forward_pre_hook(
        lambda m, args: seen.append(args[0].detach().clone()))
    connector(x)
    handle.remove()
    return seen[0]


@pytest.mark.parametrize('lam', [0.15, 0.45, 0.65, 0.75])
def test_spatial_mask_zeroes_whole_positions_at_ratio_lambda(lam):
    torch.manual_seed(0)
    connector = MGDConnector(4, 4, mask_ratio=lam)
    x = torch.rand(4, 4, 128, 128) + 1  # never 0 before masking
    masked = masked_input(connector, x)
    zero = masked == 0
    # a masked position is zero in every channel; the rest is untouched
    assert torch.equal(zero.all(1), zero.any(1))
    assert torch.equal(masked[~zero], x[~zero])
    # per image and position: Bernoulli(lambda) over 4 * 128 * 128 draws
    n = zero[:, 0].numel()
    sd = (lam * (1 - lam) / n)**0.5
    assert abs(zero[:, 0].float().mean().item() - lam) < 5 * sd
    # independent per image: the images' masks differ
    assert not torch.equal(zero[0, 0], zero[1, 0])


def test_channel_mask_zeroes_whole_channels_at_ratio_lambda():
    lam = 0.15
    torch.manual_seed(0)
    connector = MGDConnector(256, 256, mask_ratio=lam, mask_type='channel')
    x = torch.rand(64, 256, 3, 3) + 1
    masked = masked_input(connector, x)
    zero = masked == 0
    assert torch.equal(zero.flatten(2).all(2), zero.flatten(2).any(2))
    assert torch.equal(masked[~zero], x[~zero])
    frac = zero[..., 0, 0].float().mean().item()
    assert abs(frac - lam) < 5 * (lam * (1 - lam) / (64 * 256))**0.5


def test_mask_is_drawn_at_every_step_and_in_eval_mode():
    torch.manual_seed(0)
    connector = MGDConnector(4, 4, mask_ratio=0.5)
    x = torch.rand(2, 4, 16, 16) + 1
    first = masked_input(connector, x) == 0
    second = masked_input(connector, x) == 0
    assert not torch.equal(first, second)
    # the authors' module has no train/eval switch: eval masks too
    connector.eval()
    zero = masked_input(connector, x) == 0
    assert 0.3 < zero[:, 0].float().mean().item() < 0.7
    # lambda = 0 keeps everything
    keep_all = MGDConnector(4, 4, mask_ratio=0.)
    assert torch.equal(masked_input(keep_all, x), x)


def test_mask_follows_the_runs_seed():
    """MMEngine's randomness=dict(seed=...) calls set_random_seed, which
    seeds the generator the mask is drawn from."""
    connector = MGDConnector([4, 4], [4, 4], mask_ratio=0.65)
    x = [torch.rand(2, 4, 16, 16) + 1, torch.rand(2, 4, 8, 8) + 1]

    def masks(seed):
        set_random_seed(seed)
        seen = []
        handles = [
            level.generation.register_forward_pre_hook(
                lambda m, a: seen.append(a[0] == 0))
            for level in connector.levels
        ]
        connector(x)
        for h in handles:
            h.remove()
        return seen

    a, b, c = masks(1), masks(1), masks(2)
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert all(not torch.equal(p, q) for p, q in zip(a, c))


def test_bad_input_says_what_to_fix():
    with pytest.raises(ValueError, match=r'\[0, 1\)'):
        MGDConnector(4, 4, mask_ratio=1.0)
    with pytest.raises(ValueError, match="'spatial'"):
        MGDConnector(4, 4, mask_type='pixel')
    with pytest.raises(ValueError, match='same number of taps'):
        MGDConnector([4, 4], [4, 4, 4])
    with pytest.raises(ValueError, match='same number of taps'):
        MGDConnector([4], 4)
    connector = MGDConnector([4, 4], [4, 4])
    with pytest.raises(
            ValueError,
            match='tap a student and a teacher level '
            'of the same stride'):
        connector([torch.rand(1, 4, 8, 8),
                   torch.rand(1, 4, 4, 4)],
                  out_sizes=[(8, 8), (8, 8)])
    with pytest.raises(ValueError, match='same number of levels'):
        connector([torch.rand(1, 4, 8, 8),
                   torch.rand(1, 4, 4, 4)],
                  out_sizes=[(8, 8)])
    with pytest.raises(ValueError, match='expects'):
        connector([torch.rand(1, 3, 8, 8), torch.rand(1, 4, 4, 4)])
    with pytest.raises(ValueError, match='a list'):
        connector(torch.rand(1, 4, 8, 8))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_on_cuda_the_mask_comes_from_the_cuda_generator():
    """Seeded by torch.manual_seed (MMEngine's seed), the CPU generator
    untouched; value and gradient as the formula with that mask."""
    torch.manual_seed(0)
    connector = MGDConnector(6, 10, mask_ratio=0.65).cuda().double()
    S = torch.randn(
        3, 6, 12, 9, dtype=torch.float64, device='cuda', requires_grad=True)
    T = torch.randn(3, 10, 12, 9, dtype=torch.float64, device='cuda')
    torch.manual_seed(5)
    cpu_state = torch.get_rng_state()
    loss = MGDLoss(2e-5)(connector(S), T)
    assert torch.equal(cpu_state, torch.get_rng_state())
    weights = copied_weights(connector)
    torch.manual_seed(5)
    expected = reference_mgd(
        S, T, weights[0], 0.65, 'spatial', 2e-5, device='cuda')
    assert rel_err(loss, expected) <= 1e-10
    got = torch.autograd.grad(loss, [S] + list(connector.parameters()))
    want = torch.autograd.grad(expected, [S] + weights[0]['align'] +
                               weights[0]['generation'])
    assert all(rel_err(g, w) <= 1e-10 for g, w in zip(got, want))
