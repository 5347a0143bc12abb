"""FGDLoss and its FGDConnectors against a reference written from the
authors' ``FeatureLoss`` (yzd-v/FGD, mmdet/distillation/losses/fgd.py):
masks by loops over images and boxes, the feature loss with the square
roots of the masks and attentions, the context block by ``matmul`` with
the connectors' weights copied into plain tensors."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmkd.models.connectors import FGDConnector
from mmkd.models.losses import FGDLoss
from mmkd.models.losses.fgd_loss import fgd_masks


# --------------------------------------------------------------------------
# The reference: the authors' computation, written out
# --------------------------------------------------------------------------
def ref_masks(boxes, img_shapes, H, W, dtype):
    N = len(boxes)
    fg = torch.zeros(N, H, W, dtype=dtype)
    bg = torch.ones(N, H, W, dtype=dtype)
    for i in range(N):
        h_img, w_img = img_shapes[i]
        b = boxes[i]
        new = torch.ones_like(b)
        new[:, 0] = b[:, 0] / w_img * W
        new[:, 2] = b[:, 2] / w_img * W
        new[:, 1] = b[:, 1] / h_img * H
        new[:, 3] = b[:, 3] / h_img * H
        wmin, wmax = torch.floor(new[:, 0]).int(), torch.ceil(new[:, 2]).int()
        hmin, hmax = torch.floor(new[:, 1]).int(), torch.ceil(new[:, 3]).int()
        for j in range(len(b)):
            area = 1.0 / (hmax[j].item() + 1 - hmin[j].item()) / (
                wmax[j].item() + 1 - wmin[j].item())
            rows = slice(hmin[j].item(), hmax[j].item() + 1)
            cols = slice(wmin[j].item(), wmax[j].item() + 1)
            fg[i][rows, cols] = torch.maximum(fg[i][rows, cols],
                                              torch.tensor(area, dtype=dtype))
        bg[i] = torch.where(fg[i] > 0, 0., 1.).to(dtype)
        if torch.sum(bg[i]):
            bg[i] /= torch.sum(bg[i])
    return fg, bg


def ref_attention(x, temp):
    N, C, H, W = x.shape
    value = torch.abs(x)
    fea_map = value.mean(axis=1, keepdim=True)
    S = (H * W * F.softmax((fea_map / temp).view(N, -1), dim=1)).view(N, H, W)
    channel_map = value.mean(axis=2, keepdim=False).mean(axis=2, keepdim=False)
    C_att = C * F.softmax(channel_map / temp, dim=1)
    return S, C_att


def ref_context(x, w):
    """The GcBlock of the authors' spatial_pool + channel_add_conv, from the
    weights ``w`` (plain tensors)."""
    N, C, H, W = x.shape
    input_x = x.view(N, C, H * W).unsqueeze(1)
    mask = F.conv2d(x, w['mask_w'], w['mask_b']).view(N, 1, H * W)
    mask = F.softmax(mask, dim=2).unsqueeze(-1)
    context = torch.matmul(input_x, mask).view(N, C, 1, 1)
    y = F.conv2d(context, w['c1_w'], w['c1_b'])
    y = F.layer_norm(y, y.shape[1:], w['ln_w'], w['ln_b'], eps=1e-5)
    y = F.conv2d(F.relu(y), w['c2_w'], w['c2_b'])
    return x + y


def ref_level(fs, ft, boxes, img_shapes, ws, wt, align, a, b, g, lam, temp):
    if align is not None:
        fs = F.conv2d(fs, align[0], align[1])
    N, C, H, W = fs.shape
    S_t, C_t = ref_attention(ft, temp)
    S_s, C_s = ref_attention(fs, temp)
    Mask_fg, Mask_bg = ref_masks(boxes, img_shapes, H, W, fs.dtype)
    Mask_fg, Mask_bg = Mask_fg.unsqueeze(1), Mask_bg.unsqueeze(1)
    C_tt = C_t.unsqueeze(-1).unsqueeze(-1)
    S_tt = S_t.unsqueeze(1)
    fea_t = ft * torch.sqrt(S_tt) * torch.sqrt(C_tt)
    fea_s = fs * torch.sqrt(S_tt) * torch.sqrt(C_tt)
    mse = torch.nn.MSELoss(reduction='sum')
    fg_loss = mse(fea_s * torch.sqrt(Mask_fg), fea_t * torch.sqrt(Mask_fg))
    bg_loss = mse(fea_s * torch.sqrt(Mask_bg), fea_t * torch.sqrt(Mask_bg))
    fg_loss, bg_loss = fg_loss / len(Mask_fg), bg_loss / len(Mask_bg)
    mask_loss = torch.sum(torch.abs(C_s - C_t)) / len(C_s) + torch.sum(
        torch.abs(S_s - S_t)) / len(S_s)
    rela_loss = mse(ref_context(fs, ws), ref_context(ft, wt)) / len(fs)
    return a * fg_loss + b * bg_loss + g * mask_loss + lam * rela_loss


def block_weights(block):
    """The connector block's weights copied into leaf tensors."""
    c1, ln, c2 = (block.channel_add_conv[i] for i in (0, 1, 3))
    w = dict(
        mask_w=block.conv_mask.weight,
        mask_b=block.conv_mask.bias,
        c1_w=c1.weight,
        c1_b=c1.bias,
        ln_w=ln.weight,
        ln_b=ln.bias,
        c2_w=c2.weight,
        c2_b=c2.bias)
    return {k: v.detach().clone().requires_grad_(True) for k, v in w.items()}


# --------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------
SIZES = [(8, 10), (4, 5)]  # two levels, non-square
IMG_SHAPES = [(60, 76), (64, 70)]  # (h, w) of each image's boxes


def make_boxes(seed, dtype=torch.float64, empty_second=False):
    g = torch.Generator().manual_seed(seed)
    boxes = []
    for i, (h, w) in enumerate(IMG_SHAPES):
        n = 0 if (empty_second and i == 1) else 4
        xy = torch.rand(
            n, 2, generator=g, dtype=dtype) * torch.tensor([w * 0.8, h * 0.8],
                                                           dtype=dtype)
        wh = torch.rand(
            n, 2, generator=g, dtype=dtype) * torch.tensor([w * 0.5, h * 0.5],
                                                           dtype=dtype) + 1
        b = torch.cat(
            [xy, torch.minimum(xy + wh, torch.tensor([w, h], dtype=dtype))], 1)
        if n:  # a box from the top-left corner to the bottom border
            b[0] = torch.tensor([0., 0., 0.3 * w, h], dtype=dtype)
        boxes.append(b)
    return boxes


def make_case(seed, cs=6, ct=8, empty_second=False):
    """Student/teacher maps of two levels, float64, and the two connectors
    with every weight random (the zero-initialised last conv too)."""
    torch.manual_seed(seed)
    fs = [torch.randn(2, cs, *s, dtype=torch.float64) for s in SIZES]
    ft = [torch.randn(2, ct, *s, dtype=torch.float64) for s in SIZES]
    conn_s = FGDConnector([cs] * 2, [ct] * 2).double()
    conn_t = FGDConnector([ct] * 2).double()
    with torch.no_grad():
        for p in list(conn_s.parameters()) + list(conn_t.parameters()):
            p.normal_(0, 0.5)
    return fs, ft, conn_s, conn_t, make_boxes(seed, empty_second=empty_second)


def metas(shapes=IMG_SHAPES):
    return [dict(img_shape=s, batch_input_shape=(64, 80)) for s in shapes]


def run_ours(loss, fs, ft, conn_s, conn_t, boxes, img_metas=None):
    out_s = conn_s(fs, out_sizes=[f.shape[-2:] for f in ft])
    out_t = conn_t(ft)
    return loss(
        out_s['feats'],
        ft,
        out_s['relation'],
        out_t['relation'],
        gt_instances=boxes,
        img_metas=img_metas or metas())


WEIGHTS = [
    (1., 0., 0., 0.),  # each term alone
    (0., 1., 0., 0.),
    (0., 0., 1., 0.),
    (0., 0., 0., 1.),
    (0.001, 0.0005, 0.0005, 0.000005),  # the RetinaNet config
]


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp(min=1e-300)).item()


# --------------------------------------------------------------------------
# Value and gradients against the reference
# --------------------------------------------------------------------------
@pytest.mark.parametrize('weights', WEIGHTS)
@pytest.mark.parametrize('cs,temp', [(6, 0.5), (8, 0.8)])
def test_value_and_gradients_match_the_authors_formula(weights, cs, temp):
    a, b, g, lam = weights
    fs, ft, conn_s, conn_t, boxes = make_case(0, cs=cs, empty_second=cs == 8)
    fs = [f.requires_grad_(True) for f in fs]
    loss_fn = FGDLoss(
        temp=temp,
        alpha_fgd=a,
        beta_fgd=b,
        gamma_fgd=g,
        lambda_fgd=lam,
        loss_weight=1.7)
    ours = run_ours(loss_fn, fs, ft, conn_s, conn_t, boxes)
    assert ours.dtype == torch.float64

    fs_ref = [f.detach().clone().requires_grad_(True) for f in fs]
    ws = [block_weights(blk) for blk in conn_s.context]
    wt = [block_weights(blk) for blk in conn_t.context]
    aligns = [(m.weight.detach().clone().requires_grad_(True),
               m.bias.detach().clone().requires_grad_(True)) if isinstance(
                   m, torch.nn.Conv2d) else None for m in conn_s.align]
    assert (aligns[0] is None) == (cs == 8)  # align only if channels differ
    ref = 1.7 * sum(
        ref_level(fs_ref[i], ft[i], boxes, IMG_SHAPES, ws[i], wt[i], aligns[i],
                  a, b, g, lam, temp) for i in range(2))
    assert ref.item() > 0
    assert abs(ours.item() - ref.item()) <= 1e-10 * abs(ref.item())

    ours.backward()
    ref.backward()
    for f, fr in zip(fs, fs_ref):
        assert rel_err(f.grad, fr.grad) <= 1e-10
    pairs = []
    for conn, refs in ((conn_s, ws), (conn_t, wt)):
        for blk, w in zip(conn.context, refs):
            c1, ln, c2 = (blk.channel_add_conv[i] for i in (0, 1, 3))
            pairs += [(blk.conv_mask.weight, w['mask_w']),
                      (blk.conv_mask.bias, w['mask_b']),
                      (c1.weight, w['c1_w']), (c1.bias, w['c1_b']),
                      (ln.weight, w['ln_w']), (ln.bias, w['ln_b']),
                      (c2.weight, w['c2_w']), (c2.bias, w['c2_b'])]
    for m, al in zip(conn_s.align, aligns):
        if al is not None:
            pairs += [(m.weight, al[0]), (m.bias, al[1])]
    for p, pr in pairs:
        if pr.grad is None or not pr.grad.abs().max() > 0:
            assert p.grad is None or not p.grad.abs().max() > 0
        else:
            assert rel_err(p.grad, pr.grad) <= 1e-10


def test_gradient_reaches_student_and_blocks_never_teacher():
    fs, ft, conn_s, conn_t, boxes = make_case(1)
    fs = [f.requires_grad_(True) for f in fs]
    ft = [f.requires_grad_(True) for f in ft]  # must stay without gradient
    loss = run_ours(
        FGDLoss(alpha_fgd=1., beta_fgd=1., gamma_fgd=1., lambda_fgd=1.), fs,
        ft, conn_s, conn_t, boxes)
    loss.backward()
    assert all(f.grad is not None and f.grad.abs().max() > 0 for f in fs)
    assert all(f.grad is None for f in ft)
    for name, p in list(conn_s.named_parameters()) + list(
            conn_t.named_parameters()):
        assert p.grad is not None and p.grad.abs().max() > 0, name


def test_bf16_autocast_inputs_give_a_float32_loss():
    torch.manual_seed(0)
    fs = [torch.randn(2, 8, *s).bfloat16() for s in SIZES]
    ft = [torch.randn(2, 8, *s).bfloat16() for s in SIZES]
    rs = [f + 0.1 for f in fs]
    rt = [f - 0.1 for f in ft]
    boxes = [b.float() for b in make_boxes(0)]
    loss_fn = FGDLoss(alpha_fgd=1., beta_fgd=1., gamma_fgd=1., lambda_fgd=1.)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        low = loss_fn(fs, ft, rs, rt, boxes, metas())
    full = loss_fn([f.float() for f in fs], [f.float() for f in ft],
                   [f.float() for f in rs], [f.float() for f in rt], boxes,
                   metas())
    assert low.dtype == torch.float32
    assert math.isclose(low.item(), full.item(), rel_tol=1e-6)


# --------------------------------------------------------------------------
# Masks
# --------------------------------------------------------------------------
def test_mask_of_one_box_has_one_over_its_area():
    # 64 x 64 image, 8 x 8 map: (4, 8, 36, 40) -> x 0.5..4.5, y 1..5:
    # columns floor(0.5)=0 .. ceil(4.5)=5, rows 1 .. 5, both ends included
    fg, bg = fgd_masks([torch.tensor([[4., 8., 36., 40.]])], [(64, 64)],
                       (8, 8), torch.float64)
    expected = torch.zeros(8, 8, dtype=torch.float64)
    expected[1:6, 0:6] = 1 / (5 * 6)
    torch.testing.assert_close(fg[0], expected, rtol=0, atol=0)
    expected_bg = (expected == 0).double() / (64 - 30)
    torch.testing.assert_close(bg[0], expected_bg, rtol=0, atol=0)


def test_overlapping_boxes_take_the_max_and_borders_cut():
    boxes = torch.tensor([
        [4., 8., 36., 40.],  # 1/30 on rows 1-5, cols 0-5
        [16., 16., 63.9, 63.9]
    ])  # cols/rows 2..8: 1/49
    fg, bg = fgd_masks([boxes], [(64, 64)], (8, 8), torch.float64)
    expected = torch.zeros(8, 8, dtype=torch.float64)
    expected[2:8, 2:8] = 1 / 49  # 7 x 7 counted, 6 x 6 on the map
    expected[1:6, 0:6] = torch.clamp(expected[1:6, 0:6], min=1 / 30)
    torch.testing.assert_close(fg[0], expected, rtol=0, atol=0)
    n_bg = int((expected == 0).sum())
    torch.testing.assert_close(
        bg[0], (expected == 0).double() / n_bg, rtol=0, atol=0)


def test_box_covering_the_image_and_image_without_boxes():
    fg, bg = fgd_masks([torch.tensor([[0., 0., 64., 64.]]),
                        torch.zeros(0, 4)], [(64, 64), (64, 64)], (8, 8),
                       torch.float64)
    # columns/rows 0..8: 9 x 9 counted, the whole 8 x 8 map covered
    assert torch.equal(fg[0], torch.full((8, 8), 1 / 81, dtype=torch.float64))
    assert torch.equal(bg[0], torch.zeros(8, 8, dtype=torch.float64))
    assert torch.equal(fg[1], torch.zeros(8, 8, dtype=torch.float64))
    assert torch.equal(bg[1], torch.full((8, 8), 1 / 64, dtype=torch.float64))


def test_boxes_are_scaled_by_img_shape_not_the_padded_input():
    # a 48 x 64 image padded to 64 x 64: the authors divide by img_shape,
    # so a box down to the image's bottom reaches the map's last row
    box = torch.tensor([[0., 24., 32., 48.]])
    fg, _ = fgd_masks([box], [(48, 64)], (8, 8), torch.float64)
    assert fg[0, 4:, 0:5].min() > 0 and fg[0, :4].max() == 0
    fg, _ = fgd_masks([box], [(64, 64)], (8, 8), torch.float64)
    assert fg[0, 3:7, 0:5].min() > 0 and fg[0, 7].max() == 0


@pytest.mark.parametrize('seed', range(3))
def test_masks_match_the_loops_on_random_boxes(seed):
    boxes = [
        b.float()
        for b in make_boxes(seed, torch.float64, empty_second=seed == 2)
    ]
    for H, W in SIZES + [(13, 7)]:
        fg, bg = fgd_masks(boxes, IMG_SHAPES, (H, W), torch.float64)
        rfg, rbg = ref_masks(boxes, IMG_SHAPES, H, W, torch.float64)
        torch.testing.assert_close(fg, rfg, rtol=0, atol=0)
        torch.testing.assert_close(bg, rbg, rtol=1e-15, atol=0)


def test_shape_key_batch_input_shape():
    # the foreground term alone, with the boxes divided by the padded
    # batch's (64, 80) instead of each image's img_shape
    fs, ft, conn_s, conn_t, boxes = make_case(2)
    loss = FGDLoss(
        alpha_fgd=1.,
        beta_fgd=0.,
        gamma_fgd=0.,
        lambda_fgd=0.,
        shape_key='batch_input_shape')
    ours = run_ours(loss, fs, ft, conn_s, conn_t, boxes)
    ref = sum(
        ref_level(
            conn_s(fs)['feats'][i], ft[i], boxes, [(64, 80)] *
            2, block_weights(conn_s.context[i]),
            block_weights(conn_t.context[i]), None, 1., 0., 0., 0., 0.5)
        for i in range(2))
    assert abs(ours.item() - ref.item()) <= 1e-10 * ref.item()
    default = run_ours(
        FGDLoss(alpha_fgd=1., beta_fgd=0., gamma_fgd=0., lambda_fgd=0.), fs,
        ft, conn_s, conn_t, boxes)
    assert abs(default.item() - ours.item()) > 1e-3 * ours.item()


# --------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------
def test_bad_input_says_what_to_fix():
    fs, ft, conn_s, conn_t, boxes = make_case(3)
    loss = FGDLoss()
    out_s, out_t = conn_s(fs), conn_t(ft)
    args = (out_s['feats'], ft, out_s['relation'], out_t['relation'])
    with pytest.raises(ValueError, match="gt_instances='gt_instances'"):
        loss(*args)
    # channels without the align conv: the raw student maps
    with pytest.raises(ValueError, match='align conv'):
        loss(fs, ft, out_s['relation'], out_t['relation'], boxes, metas())
    with pytest.raises(ValueError, match='different numbers of levels'):
        loss(out_s['feats'], ft[:1], out_s['relation'], out_t['relation'],
             boxes, metas())
    with pytest.raises(ValueError, match='same stride'):
        loss(out_s['feats'][::-1], ft, out_s['relation'][::-1],
             out_t['relation'], boxes, metas())
    with pytest.raises(ValueError, match='for a batch of 2'):
        loss(*args, boxes[:1], metas()[:1])
    from mmengine.structures import InstanceData
    no_boxes = [InstanceData(labels=torch.zeros(1)) for _ in range(2)]
    with pytest.raises(ValueError, match='with_bbox=True'):
        loss(*args, no_boxes, metas())
    with pytest.raises(ValueError, match="no 'img_shape'"):
        loss(*args, boxes, [dict(pad_shape=(64, 64))] * 2)
    with pytest.raises(ValueError, match='temp'):
        FGDLoss(temp=0)


def test_connector_levels_sizes_and_detach():
    with pytest.raises(ValueError, match='pairs the levels one to one'):
        FGDConnector([4, 4, 4], [8, 8])
    conn_s = FGDConnector([4, 8], [8, 8])
    assert isinstance(conn_s.align[0], torch.nn.Conv2d)
    assert isinstance(conn_s.align[1], torch.nn.Identity)
    fs = [
        torch.randn(2, 4, 8, 8, requires_grad=True),
        torch.randn(2, 8, 4, 4, requires_grad=True)
    ]
    with pytest.raises(ValueError, match='same stride'):
        conn_s(fs, out_sizes=[(8, 8), (2, 2)])
    out = conn_s(fs, out_sizes=[(8, 8), (4, 4)])
    # the authors' initialisation: the context adds zero at the start
    for f, r in zip(out['feats'], out['relation']):
        torch.testing.assert_close(f, r, rtol=0, atol=0)
    assert out['feats'][0].requires_grad
    conn_t = FGDConnector([8, 8])
    assert isinstance(conn_t.align[0], torch.nn.Identity)
    out_t = conn_t([torch.randn(2, 8, 8, 8, requires_grad=True)] * 2)
    assert not out_t['feats'][0].requires_grad  # detached teacher
    assert out_t['relation'][0].requires_grad  # the block's own weights
    single = FGDConnector(4, 8)(torch.randn(2, 4, 3, 3))
    assert single['feats'].shape == (2, 8, 3, 3)
