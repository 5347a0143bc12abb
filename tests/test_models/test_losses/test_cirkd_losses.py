"""CIRKD's mini-batch and memory losses against the authors' formulas
(winycg/CIRKD ``losses/cirkd_mini_batch.py``, ``losses/cirkd_memory.py``),
written here as loops over image pairs and over pixels, in float64."""
import copy

import pytest
import torch
import torch.nn.functional as F

from mmkd.models.connectors import CIRKDMemory
from mmkd.models.losses import (CIRKDMemoryLoss, CIRKDMiniBatchLoss,
                                PixelWiseLoss)


def rel(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp(min=1e-300)).item()


# ------------------------------------------------------------- mini-batch
def minibatch_reference(feat_S, feat_T, tau, pooling):
    """The authors' loop: every ordered pair (i, j), row-softmax KL,
    batchmean over the rows, / B^2."""
    if pooling:
        pool = torch.nn.AvgPool2d(2, 2, padding=0, ceil_mode=True)
        feat_S, feat_T = pool(feat_S), pool(feat_T)
    feat_S = F.normalize(feat_S, p=2, dim=1)
    feat_T = F.normalize(feat_T, p=2, dim=1)
    B = feat_S.shape[0]
    total = feat_S.new_zeros(())
    for i in range(B):
        for j in range(B):
            s = feat_S[i].flatten(1).T @ feat_S[j].flatten(1)
            t = feat_T[i].flatten(1).T @ feat_T[j].flatten(1)
            total = total + F.kl_div(
                F.log_softmax(s / tau, dim=1),
                F.softmax(t / tau, dim=1),
                reduction='batchmean')
    return total / (B * B)


@pytest.mark.parametrize('tau,pooling,size', [(0.1, False, (3, 5)),
                                              (0.5, False, (4, 2)),
                                              (0.1, True, (4, 6)),
                                              (0.2, True, (5, 3))])
def test_minibatch_matches_authors_loop(tau, pooling, size):
    g = torch.Generator().manual_seed(0)
    s = torch.randn(
        3, 4, *size, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(
        3, 6, *size, generator=g, dtype=torch.float64,
        requires_grad=True)  # other channels: N x N maps
    loss = CIRKDMiniBatchLoss(tau=tau, pooling=pooling, loss_weight=2.)(s, t)
    ref = 2. * minibatch_reference(s, t.detach(), tau, pooling)
    assert rel(loss, ref) <= 1e-10
    g_loss, = torch.autograd.grad(loss, s)
    g_ref, = torch.autograd.grad(ref, s)
    assert rel(g_loss, g_ref) <= 1e-10
    assert g_loss.abs().sum() > 0
    loss = CIRKDMiniBatchLoss(tau=tau, pooling=pooling)(s, t)
    loss.backward()
    assert t.grad is None  # the teacher gets nothing
    # the same maps give 0
    same = CIRKDMiniBatchLoss(tau=tau, pooling=pooling)(t.detach(), t)
    assert abs(same.item()) < 1e-12


def test_minibatch_bad_input():
    with pytest.raises(ValueError, match='same batch and spatial size'):
        CIRKDMiniBatchLoss()(torch.randn(2, 4, 8, 8), torch.randn(2, 4, 4, 4))
    with pytest.raises(ValueError, match='tau must be positive'):
        CIRKDMiniBatchLoss(tau=0.)


# ----------------------------------------------------------------- memory
def make_memory(D=5, K=3, dtype=torch.float64, **kw):
    torch.manual_seed(0)
    args = dict(
        in_channels=4,
        out_channels=D,
        num_classes=K,
        pixel_memory_size=12,
        region_memory_size=6,
        pixel_contrast_size=5,
        region_contrast_size=3,
        pixel_update_freq=4)
    args.update(kw)
    return CIRKDMemory(**args).to(dtype)


def memory_kl_reference(s,
                        t,
                        labels,
                        pixel_queue,
                        region_queue,
                        pixel_idx,
                        region_idx,
                        tau,
                        T,
                        ignore=255):
    """The authors' forward after the enqueue, pixel by pixel: contrast set
    of class-by-class slots, logits s.x / tau, KL at T, batchmean, T^2."""
    B, D, h, w = s.shape
    X_p = torch.cat(
        [pixel_queue[c, pixel_idx] for c in range(pixel_queue.shape[0])])
    X_r = torch.cat(
        [region_queue[c, region_idx] for c in range(region_queue.shape[0])])
    out = []
    for X in (X_p, X_r):
        total, M = s.new_zeros(()), 0
        for b in range(B):
            for y in range(h):
                for x in range(w):
                    if labels[b, y, x] == ignore:
                        continue
                    M += 1
                    ls = torch.stack([s[b, :, y, x] @ q for q in X]) / tau
                    lt = torch.stack([t[b, :, y, x] @ q for q in X]) / tau
                    ps = F.log_softmax(ls / T, dim=0)
                    pt = F.softmax(lt / T, dim=0)
                    total = total + (pt * (pt.log() - ps)).sum()
        out.append(total / M * T**2)
    return out


@pytest.mark.parametrize('T', [1.0, 2.0])
def test_memory_kl_matches_authors_formula(T):
    memory = make_memory()
    g = torch.Generator().manual_seed(1)
    s = F.normalize(
        torch.randn(2, 5, 3, 4, generator=g, dtype=torch.float64), dim=1)
    s.requires_grad_(True)
    t = F.normalize(
        torch.randn(2, 5, 3, 4, generator=g, dtype=torch.float64), dim=1)
    labels = torch.randint(0, 3, (2, 3, 4), generator=g)
    labels[0, 0] = 255
    pixel_idx, region_idx = torch.tensor([7, 0, 3, 11,
                                          5]), torch.tensor([4, 1, 2])
    loss_fn = CIRKDMemoryLoss(
        pixel_weight=0.3,
        region_weight=0.7,
        contrast_temperature=0.1,
        kd_temperature=T)
    loss = loss_fn.relation_kl(s, t, labels,
                               memory.contrast(pixel_idx, region_idx), 255)
    kl_p, kl_r = memory_kl_reference(s, t, labels, memory.pixel_queue,
                                     memory.region_queue, pixel_idx,
                                     region_idx, 0.1, T)
    ref = 0.3 * kl_p + 0.7 * kl_r
    assert rel(loss, ref) <= 1e-10
    g_loss, = torch.autograd.grad(loss, s)
    g_ref, = torch.autograd.grad(ref, s)
    assert rel(g_loss, g_ref) <= 1e-10
    assert g_loss[0, :, 0].abs().max() == 0  # ignored pixels: no gradient
    assert g_loss[1].abs().sum() > 0


def test_memory_forward_enqueues_then_contrasts():
    """The whole forward: labels resized (nearest) to the embeddings, the
    enqueue (its keys, then one randperm per queue, from torch's generator,
    in that order), then the KL on the sampled sets; gradient to the
    student's projection head, not to the teacher."""
    memory = make_memory()
    loss_fn = CIRKDMemoryLoss()
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 4, 3, 4, generator=g, dtype=torch.float64)
    t_raw = torch.randn(
        2, 5, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    gt = torch.randint(0, 3, (2, 12, 16), generator=g)
    gt[1, :4] = 255
    before = copy.deepcopy(memory)

    torch.manual_seed(5)
    embed = memory(x)['embed']
    loss = loss_fn(embed, t_raw, memory, gt)
    loss.backward()

    labels = gt[:, ::4, ::4]  # nearest, scale 4: the top-left pixel
    t = F.normalize(t_raw.detach(), dim=1)
    torch.manual_seed(5)
    keys = torch.rand(2, 12)
    pixel_idx = torch.randperm(12)[:5]
    region_idx = torch.randperm(6)[:3]
    before.enqueue(t, labels, keys)
    for name in ('pixel_queue', 'region_queue', 'pixel_queue_ptr',
                 'region_queue_ptr'):
        assert torch.equal(getattr(memory, name), getattr(before, name))
    s = F.normalize(before(x)['embed'], dim=1)
    kl_p, kl_r = memory_kl_reference(s, t, labels, before.pixel_queue,
                                     before.region_queue, pixel_idx,
                                     region_idx, 0.1, 1.0)
    assert rel(loss, 0.1 * kl_p + 0.1 * kl_r) <= 1e-10
    assert t_raw.grad is None
    for p in memory.project.parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_memory_all_ignored_batch():
    memory = make_memory()
    before = copy.deepcopy(memory)
    x = torch.randn(2, 4, 3, 4, dtype=torch.float64, requires_grad=True)
    gt = torch.full((2, 6, 8), 255)
    loss = CIRKDMemoryLoss()(memory(x)['embed'],
                             torch.randn(2, 5, 3, 4, dtype=torch.float64),
                             memory, gt)
    assert loss.item() == 0
    loss.backward()
    assert x.grad is not None and x.grad.abs().sum() == 0
    for name, buf in memory.named_buffers():
        if 'queue' in name:
            assert torch.equal(buf, dict(before.named_buffers())[name])


def test_memory_loss_bad_input():
    memory = make_memory()
    s, t = torch.randn(2, 5, 3, 4), torch.randn(2, 5, 3, 4)
    gt = torch.zeros(2, 3, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="map its `gt` argument"):
        CIRKDMemoryLoss()(s, t, memory)
    with pytest.raises(ValueError, match='must agree'):
        CIRKDMemoryLoss()(torch.randn(2, 4, 3, 4), t, memory, gt)
    with pytest.raises(ValueError, match="'<connector name>.memory'"):
        CIRKDMemoryLoss()(s, t, torch.zeros(1), gt)
    with pytest.raises(ValueError, match='outside'):
        CIRKDMemoryLoss()(s, t, memory.float(), gt + 3)


def test_logit_term_is_pixel_wise_kl_batchmean():
    """The authors' CriterionKD (KL batchmean over all B*H*W pixels, T^2)
    is PixelWiseLoss(batch_reduction='mean')."""
    g = torch.Generator().manual_seed(3)
    s = torch.randn(2, 4, 3, 5, generator=g, dtype=torch.float64)
    t = torch.randn(2, 4, 3, 5, generator=g, dtype=torch.float64)
    for T in (1.0, 4.0):
        ref = F.kl_div(
            F.log_softmax(s.permute(0, 2, 3, 1).reshape(-1, 4) / T, 1),
            F.softmax(t.permute(0, 2, 3, 1).reshape(-1, 4) / T, 1),
            reduction='batchmean') * T**2
        loss = PixelWiseLoss(tau=T, batch_reduction='mean')(s, t)
        assert rel(loss, ref) <= 1e-10
