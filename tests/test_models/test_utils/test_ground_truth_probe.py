"""Probe values of ground-truth keys: registered with the key, replaced or
dropped when the key is registered again, None for a key without one."""
import pytest
import torch
from torch import nn

from mmkd.models.utils import probe_ground_truth
from mmkd.models.utils.ground_truth import (GROUND_TRUTH, GROUND_TRUTH_PROBES,
                                            register_ground_truth)


@pytest.fixture
def key():
    yield 'gt_test_probe'
    GROUND_TRUTH.pop('gt_test_probe', None)
    GROUND_TRUTH_PROBES.pop('gt_test_probe', None)


def test_probe_is_registered_with_its_key(key):
    register_ground_truth(
        key,
        lambda samples: [s.x for s in samples],
        probe=lambda inputs, student: inputs.shape[-2:])
    inputs = torch.zeros(2, 3, 8, 12)
    assert probe_ground_truth(key, inputs, nn.Identity()) == (8, 12)
    register_ground_truth(key, lambda samples: None, force=True)
    assert probe_ground_truth(key, inputs, nn.Identity()) is None
    with pytest.raises(KeyError, match='unknown ground truth'):
        probe_ground_truth('gt_not_registered', inputs, nn.Identity())


def test_builtin_probes():
    inputs = torch.zeros(2, 3, 32, 48)
    metas = probe_ground_truth('img_metas', inputs, nn.Identity())
    assert [m['img_shape'] for m in metas] == [(32, 48)] * 2
    assert metas[0]['batch_input_shape'] == (32, 48)
    with pytest.raises(ValueError, match='Identity.*not an mmdet detector'):
        probe_ground_truth('gt_instances', inputs, nn.Identity())
    with pytest.raises(
            ValueError, match='Identity.*not an mmpretrain classifier'):
        probe_ground_truth('gt_label', inputs, nn.Identity())
    with pytest.raises(ValueError, match='Identity.*not an mmseg segmentor'):
        probe_ground_truth('gt_sem_seg', inputs, nn.Identity())


def test_label_probes_of_a_classifier_and_a_segmentor():
    """Class 0 everywhere: ``(B, )`` for an mmpretrain classifier, ``(B, H,
    W)`` of the probe's size for an mmseg segmentor; each refuses the
    other task's student."""
    from mmseg.models import EncoderDecoder

    from mmkd.models.utils import build_task_model
    from mmkd.testing.task_configs import cifar_classifier
    classifier = build_task_model(cifar_classifier(4))
    segmentor = EncoderDecoder(
        backbone=dict(type='mmseg.ResNetV1c', depth=18),
        decode_head=dict(
            type='mmseg.FCNHead', in_channels=512, channels=8, num_classes=3))
    inputs = torch.zeros(2, 3, 32, 48)
    label = probe_ground_truth('gt_label', inputs, classifier)
    assert label.dtype == torch.long and label.tolist() == [0, 0]
    seg = probe_ground_truth('gt_sem_seg', inputs, segmentor)
    assert seg.dtype == torch.long and seg.shape == (2, 32, 48)
    assert not seg.any()
    with pytest.raises(ValueError, match='EncoderDecoder.*not an mmpretrain'):
        probe_ground_truth('gt_label', inputs, segmentor)
    with pytest.raises(ValueError, match='ImageClassifier.*not an mmseg'):
        probe_ground_truth('gt_sem_seg', inputs, classifier)
