"""Ground truth for losses: the built-in keys and registered ones, on real
mmdet DetDataSample objects and a real mmdet detector."""
import pytest
import torch
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData
from torch import nn

from mmkd.models.utils import GROUND_TRUTH_KEYS, get_ground_truth
from mmkd.models.utils.ground_truth import GROUND_TRUTH, register_ground_truth
from mmkd.registry import MODELS

SIZE = 64


def det_samples():
    from mmdet.structures import DetDataSample
    boxes = [
        torch.tensor([[4., 8., 36., 40.]]),
        torch.tensor([[0., 0., 16., 16.], [20., 24., 60., 56.]]),
    ]
    samples = []
    for i, b in enumerate(boxes):
        s = DetDataSample(
            metainfo=dict(
                img_shape=(SIZE, SIZE),
                ori_shape=(SIZE, SIZE),
                pad_shape=(SIZE, SIZE),
                scale_factor=(1., 1.),
                batch_input_shape=(SIZE, SIZE)))
        s.gt_instances = InstanceData(
            bboxes=b, labels=torch.arange(len(b)) % 2)
        samples.append(s)
    return samples


@pytest.fixture
def gt_bboxes_key():
    """A user-registered key (removed after the test)."""

    def gt_bboxes(data_samples):
        return [s.gt_instances.bboxes for s in data_samples]

    register_ground_truth('gt_bboxes', gt_bboxes)
    yield gt_bboxes
    GROUND_TRUTH.pop('gt_bboxes')


def test_builtin_and_registered_keys(gt_bboxes_key):
    samples = det_samples()
    gt = get_ground_truth(samples, 'gt_instances')
    assert [g is s.gt_instances for g, s in zip(gt, samples)] == [True, True]
    assert 'gt_bboxes' in GROUND_TRUTH_KEYS  # a live view of the table
    boxes = get_ground_truth(samples, 'gt_bboxes')
    assert [b.shape for b in boxes] == [(1, 4), (2, 4)]
    torch.testing.assert_close(boxes[1][1], torch.tensor([20., 24., 60., 56.]))
    with pytest.raises(KeyError, match='already registered'):
        register_ground_truth('gt_bboxes', gt_bboxes_key)
    with pytest.raises(
            KeyError,
            match="unknown ground truth 'gt_boxes'.*"
            'register_ground_truth'):
        get_ground_truth(samples, 'gt_boxes')
    # a key the samples do not carry (no gt_sem_seg on detection samples)
    with pytest.raises(KeyError, match='do not carry it.*LoadAnnotations'):
        get_ground_truth(samples, 'gt_sem_seg')


class BoxFeatureLoss(nn.Module):
    """Mean of the P3 feature inside each box (stride 8), over the boxes of
    the batch; the second argument is the list of InstanceData."""

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = loss_weight
        self.seen = None

    def forward(self, feats, gt_instances):
        self.seen = gt_instances
        p3 = feats[0]
        values = []
        for i, inst in enumerate(gt_instances):
            for x0, y0, x1, y1 in (inst.bboxes / 8).round().long().tolist():
                values.append(p3[i, :, y0:y1, x0:x1].mean())
        return self.loss_weight * torch.stack(values).mean()


class BoxCountLoss(nn.Module):

    def forward(self, feats, boxes):
        return sum(len(b) for b in boxes) * feats[0].mean() * 0


def test_detector_loss_gets_gt_instances(gt_bboxes_key):
    from mmkd.models.utils import load_model_config
    MODELS.register_module(
        'TestBoxFeatureLoss', module=BoxFeatureLoss, force=True)
    MODELS.register_module('TestBoxCountLoss', module=BoxCountLoss, force=True)
    init_default_scope('mmdet')
    cfg = load_model_config('mmdet::retinanet/retinanet_r18_fpn_1x_coco.py')
    student = dict(cfg.model, _scope_='mmdet')
    student['backbone'] = dict(student['backbone'], init_cfg=None)
    torch.manual_seed(0)
    model = MODELS.build(
        dict(
            type='Distiller',
            _scope_='mmkd',
            student=student,
            taps=dict(fpn='student.neck'),
            losses=dict(
                loss_box=dict(
                    type='TestBoxFeatureLoss',
                    inputs=dict(feats='fpn', gt_instances='gt_instances')),
                loss_count=dict(
                    type='TestBoxCountLoss',
                    inputs=dict(feats='fpn', boxes='gt_bboxes'))),
            probe_input_shape=(3, SIZE, SIZE))).train()
    samples = det_samples()
    inputs = torch.randn(2, 3, SIZE, SIZE)
    losses = model(inputs, samples, mode='loss')
    loss = model.distill_losses['loss_box']
    assert [g is s.gt_instances
            for g, s in zip(loss.seen, samples)] == [True, True]
    assert any(k.startswith('loss_cls') for k in losses)  # the student's

    # independent: the student's own FPN in the same (train) mode
    p3 = model.student.extract_feat(inputs)[0]
    expected = torch.stack([
        p3[0, :, 1:5, 0:4].mean(),  # (4, 8, 36, 40) / 8 -> x 0:4, y 1:5
        p3[1, :, 0:2, 0:2].mean(),
        p3[1, :, 3:7, 2:8].mean(),
    ]).mean()
    torch.testing.assert_close(losses['distill.loss_box'], expected)
    assert losses['distill.loss_count'] == 0

    # an unregistered key is refused when the model is built
    with pytest.raises(ValueError, match="refers to 'gt_boxes'"):
        MODELS.build(
            dict(
                type='Distiller',
                _scope_='mmkd',
                student=student,
                taps=dict(fpn='student.neck'),
                losses=dict(
                    loss_count=dict(
                        type='TestBoxCountLoss',
                        inputs=dict(feats='fpn', boxes='gt_boxes'))),
                probe_input_shape=(3, SIZE, SIZE)))
