"""float32_mmcv_ops: mmcv's NMS and RoIAlign under bfloat16 autocast (they
have no bfloat16 kernel), and a two-stage detector's step through
AutocastOptimWrapper."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmkd.engine.optimizers import AutocastOptimWrapper
from mmkd.engine.optimizers.float32_mmcv_ops import float32_mmcv_ops

mmcv_ops = pytest.importorskip('mmcv.ops')
from mmcv.ops.nms import NMSop  # noqa: E402
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))


def boxes_and_scores(n=60, seed=0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 50
    wh = torch.rand(n, 2, generator=g) * 20 + 2
    return torch.cat([xy, xy + wh], 1), torch.rand(n, generator=g)


def test_nms_in_bf16_selects_as_float32_on_the_same_values():
    boxes, scores = boxes_and_scores()
    b16, s16 = boxes.bfloat16(), scores.bfloat16()
    with pytest.raises(RuntimeError, match='BFloat16'):
        mmcv_ops.nms(b16, s16, 0.5)  # mmcv's kernel alone
    ref_dets, ref_keep = mmcv_ops.nms(b16.float(), s16.float(), 0.5)
    forward = NMSop.__dict__['forward']
    with float32_mmcv_ops():
        dets, keep = mmcv_ops.nms(b16, s16, 0.5)
        bdets, bkeep = mmcv_ops.batched_nms(
            b16, s16, torch.zeros(len(s16), dtype=torch.long),
            dict(type='nms', iou_threshold=0.5))
    assert torch.equal(keep, ref_keep) and torch.equal(bkeep, ref_keep)
    assert 0 < len(keep) < len(scores)
    # the kept boxes and scores are the caller's, in the caller's dtype
    assert dets.dtype == torch.bfloat16
    assert torch.equal(dets.float(), ref_dets)
    # leaving the context restores mmcv
    assert NMSop.__dict__['forward'] is forward
    with pytest.raises(RuntimeError, match='BFloat16'):
        mmcv_ops.nms(b16, s16, 0.5)


def test_roi_align_pools_float32_returns_input_dtype_and_grads():
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(2, 8, 16, 16, generator=g).bfloat16()
    feats.requires_grad_(True)
    rois = torch.tensor([[0, 1.0, 1.0, 9.0, 12.0], [1, 3.0, 2.0, 15.0, 8.0]])
    layer = mmcv_ops.RoIAlign((4, 4), spatial_scale=1.0, sampling_ratio=2)
    with float32_mmcv_ops():
        out = layer(feats, rois)
    ref = layer(feats.detach().float(), rois)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, ref.bfloat16())
    out.float().sum().backward()
    assert feats.grad.dtype == torch.bfloat16
    # each RoI's bins cover its box: the gradient is non-zero inside only
    assert feats.grad[0, :, 1:13, 1:10].abs().sum() > 0
    assert feats.grad[0, :, 14:, :].abs().sum() == 0


def test_faster_rcnn_steps_in_bf16_through_the_wrapper():
    """The RPN post-processing (batched NMS) and the RoI extractor
    (RoIAlign) run inside the wrapper's autocast; the weights move."""
    from mmdet.registry import MODELS
    from mmdet.testing import demo_mm_inputs
    init_default_scope('mmdet')
    cfg = Config.fromfile(osp.join(
        ROOT, 'configs', 'reviewkd',
        'reviewkd_faster-rcnn_r101-r50_fpn_1x_coco.py')).model.student
    cfg = copy.deepcopy(cfg)
    cfg.backbone.update(depth=18, init_cfg=None)
    cfg.neck.in_channels = [64, 128, 256, 512]
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.train()
    wrapper = AutocastOptimWrapper(
        optimizer=torch.optim.SGD(model.parameters(), lr=0.01))
    data = demo_mm_inputs(2, [[3, 128, 128]] * 2, num_items=[3, 3],
                          num_classes=80)
    before = model.roi_head.bbox_head.fc_cls.weight.detach().clone()
    log_vars = model.train_step(data, wrapper)
    assert all(torch.isfinite(torch.as_tensor(v)) for v in log_vars.values())
    assert not torch.equal(model.roi_head.bbox_head.fc_cls.weight, before)
    assert model.roi_head.bbox_head.fc_cls.weight.dtype == torch.float32
