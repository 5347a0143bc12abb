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


def record_runs(monkeypatch, function):
    """Record the ``exact`` flag of every call of ``function.relations``."""
    runs = []
    relations = function.relations
    monkeypatch.setattr(
        function, 'relations', lambda *args, exact: runs.append(exact) or
        relations(*args, exact=exact))
    return runs


def assert_value_and_grad(value, ref, leaf, tol=1e-12):
    """``value`` and its gradient w.r.t. ``leaf`` match ``ref``'s."""
    assert torch.isfinite(value) and rel(value, ref) <= tol
    grad, = torch.autograd.grad(value, leaf)
    grad_ref, = torch.autograd.grad(ref, leaf)
    assert rel(grad, grad_ref) <= tol


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


@pytest.mark.parametrize('symmetric', [False, True])
def test_bfloat16_autocast_gives_a_float32_value_near_the_float32_one(
        symmetric):
    left_S, right_S, left_T, right_T = factors(96, 48, 8, 8, torch.float32)
    if symmetric:  # S = 0.5 x x^T, T = 0.5 y y^T, softmax over 32 columns
        right_S, right_T, group = left_S, left_T, 32
        left_S, left_T = left_S.clone(), left_T * 0.5
    left_S.requires_grad_(True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        value = (relation_kl.self_relation_kl_sum(
            left_S, right_T, 0.5, group) if symmetric else relation_kl_sum(
                left_S, right_S, left_T, right_T))
    assert value.dtype == torch.float32
    exact = (kl_reference(left_S * 0.5, left_S, left_T, right_T, group)
             if symmetric else kl_reference(left_S, right_S, left_T, right_T,
                                            48))
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


@pytest.mark.parametrize('images,block', [
    (1, 2**18),  # one tile: the row terms only
    (2, 2**18),  # tiles (0, 0), (0, 1), (1, 1)
    (3, 8),  # blocks of 2 rows of the 4-column tiles
    (3, 12),  # blocks of 3 rows: the last block of a tile has 1
])
def test_self_relations_match_the_whole_matrices(monkeypatch, images, block):
    """S = scale x x^T, T = scale y y^T; the tiles below the diagonal
    come from the columns of those above it."""
    monkeypatch.setattr(relation_kl, 'BLOCK_ELEMENTS', block)
    x, _, y, _ = factors(4 * images, 1, 3, 5)
    x.requires_grad_(True)
    value = relation_kl.self_relation_kl_sum(x, y, 2.5, group=4)
    ref = kl_reference(x * 2.5, x, y * 2.5, y, 4)
    assert value.dtype == torch.float64
    assert rel(value, ref) <= 1e-12
    grad, = torch.autograd.grad(1.5 * value, x)
    grad_ref, = torch.autograd.grad(1.5 * ref, x)
    assert rel(grad, grad_ref) <= 1e-12


@pytest.mark.parametrize('images, general_path', [(1, True), (2, False)])
def test_self_relations_fall_back_above_the_tile_size(monkeypatch, images,
                                                      general_path):
    """Above the tile size one image goes to the general path (its teacher
    blocks are smaller than a tile); two or more keep their tiles, which
    hold less than the general path's whole gradient."""
    monkeypatch.setattr(relation_kl, 'TILE_ELEMENTS', 15)  # < 4 x 4
    called = []
    general = relation_kl._RelationKLSum.apply
    monkeypatch.setattr(relation_kl._RelationKLSum, 'apply',
                        lambda *args: called.append(1) or general(*args))
    x, _, y, _ = factors(4 * images, 1, 3, 5)
    x.requires_grad_(True)
    value = relation_kl.self_relation_kl_sum(x, y, 2.5, group=4)
    assert called == ([1] if general_path else [])
    assert_value_and_grad(value, kl_reference(x * 2.5, x, y * 2.5, y, 4), x)


def test_self_relations_with_large_logits_stay_finite():
    # off-diagonal tiles whose columns have one dominant entry
    x = torch.tensor([[1., 0.], [0., 1.], [1., 0.], [0., 1.]],
                     dtype=torch.float64, requires_grad=True)
    y = torch.tensor([[0., 1.], [1., 0.], [1., 0.], [0., 1.]],
                     dtype=torch.float64)
    value = relation_kl.self_relation_kl_sum(x, y, 1000., group=2)
    assert_value_and_grad(value,
                          kl_reference(x * 1000., x, y * 1000., y, 2), x)


def test_self_relations_refuse_a_group_not_dividing_the_pixels():
    x, _, y, _ = factors(6, 1, 3, 5)
    with pytest.raises(ValueError, match='group dividing M'):
        relation_kl.self_relation_kl_sum(x, y, 1., group=4)


def test_an_underflowing_softmax_at_column_0_reruns_exactly(monkeypatch):
    """The log-sum-exp is read at column 0; where the softmax there is 0
    the whole call runs again the exact way, once."""
    runs = record_runs(monkeypatch, relation_kl._RelationKLSum)
    left_S, right_S, left_T, right_T = factors(6, 4, 3, 3)
    left_S.requires_grad_(True)
    relation_kl_sum(left_S, right_S, left_T, right_T)
    assert runs == [False]  # moderate logits: one run
    left_T = left_T.clone()
    left_T[2] = torch.tensor([-1000., 0., 0.])  # row 2: p_t[2, 0] = 0
    right_T = torch.eye(4, 3, dtype=torch.float64)
    value = relation_kl_sum(left_S, right_S, left_T, right_T)
    assert runs == [False, False, True]
    assert_value_and_grad(
        value, kl_reference(left_S, right_S, left_T, right_T, 4), left_S)


def test_self_relations_rerun_exactly_once_where_column_0_underflows(
        monkeypatch):
    """The self-relation path reads the log-sum-exp at column 0 too: an
    underflow there runs the tiles again the exact way, once, and the value
    and gradient are the whole matrices' formula."""
    runs = record_runs(monkeypatch, relation_kl._SelfRelationKLSum)
    x, _, y, _ = factors(8, 1, 3, 3)
    x.requires_grad_(True)
    relation_kl.self_relation_kl_sum(x, y, 1., group=4)
    assert runs == [False]
    y = y.clone()
    y[0] = torch.tensor([-1000., 0., 0.])  # row 0: its own column 0 wins
    y[1] = torch.tensor([1000., 0., 0.])  # row 1: p_t[1, 0] underflows
    value = relation_kl.self_relation_kl_sum(x, y, 1., group=4)
    assert runs == [False, False, True]
    assert_value_and_grad(value, kl_reference(x, x, y, y, 4), x)


def test_self_relations_bf16_gradient_as_accurate_as_the_general_path():
    """Under bf16 autocast the symmetric path sums the 2 x 32 x 33 / 2
    tile products of 32 images in float32, not in bfloat16: its gradient
    is as close to the float64 one as the general path's."""
    g = torch.Generator().manual_seed(0)
    x = F.normalize(torch.randn(32 * 8, 16, generator=g), dim=1)
    y = F.normalize(torch.randn(32 * 8, 24, generator=g), dim=1)
    x64 = x.double().requires_grad_(True)
    exact, = torch.autograd.grad(
        kl_reference(x64 * 10, x64, y.double() * 10, y.double(), 8), x64)
    errors = []
    for symmetric in (True, False):
        leaf = x.clone().requires_grad_(True)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            value = (relation_kl.self_relation_kl_sum(leaf, y, 10., 8)
                     if symmetric else relation_kl_sum(
                         leaf * 10, leaf, y * 10, y, 8))
        value.backward()
        errors.append(rel(leaf.grad.double(), exact))
    assert errors[0] <= 1.3 * errors[1]


@pytest.mark.parametrize('device', [
    'cpu',
    pytest.param(
        'cuda',
        marks=[
            pytest.mark.cuda,
            pytest.mark.skipif(
                not torch.cuda.is_available(), reason='needs a CUDA device')
        ])
])
@pytest.mark.parametrize('symmetric', [True, False])
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
@pytest.mark.parametrize('scale', [10., 200.])
def test_cirkd_sizes_on_the_device_match_the_float64_formula(
        device, symmetric, dtype, scale):
    """CIRKD's mini-batch setting (unit embeddings; tau 0.1, and tau 0.005,
    where softmax entries underflow at column 0 and the exact rerun runs)
    on the device, float32 or bf16 autocast: value and gradient near the
    float64 formula on the CPU."""
    g = torch.Generator().manual_seed(0)
    B, N = 3, 64
    x = F.normalize(torch.randn(B * N, 16, generator=g), dim=1)
    y = F.normalize(torch.randn(B * N, 24, generator=g), dim=1)
    x64, y64 = x.double().requires_grad_(True), y.double()
    exact = kl_reference(x64 * scale, x64, y64 * scale, y64, N)
    grad_exact, = torch.autograd.grad(exact, x64)
    leaf = x.to(device).requires_grad_(True)
    y_dev = y.to(device)
    with torch.autocast(device, dtype=dtype, enabled=dtype != torch.float32):
        value = (relation_kl.self_relation_kl_sum(leaf, y_dev, scale, N)
                 if symmetric else relation_kl_sum(
                     leaf * scale, leaf, y_dev * scale, y_dev, N))
    assert value.device.type == device and value.dtype == torch.float32
    value.backward()
    tol = 1e-4 if dtype == torch.float32 else 5e-2
    assert rel(value.cpu().double(), exact) <= tol
    assert rel(leaf.grad.cpu().double(), grad_exact) <= tol
