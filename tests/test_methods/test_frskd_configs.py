"""Every shipped FRSKD config: its twin, its wiring, its build and init."""
import copy
import functools
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope

from mmkd.registry import MODELS

CONFIGS = osp.join(osp.dirname(__file__), '..', '..', 'configs', 'frskd')
VANILLA = '../vanilla/'  # the CE-only twins: configs/vanilla/<dataset>/
FM = VANILLA + 'fashion-mnist/'  # the twins of the Fashion-MNIST runs
R18 = [128, 256, 512, 1024]  # BiFPNc widths: 2 x (64, 128, 256, 512)

# (FRSKD config, its CE-only twin, BiFPNc widths, classes, probe input)
CLASSIFICATION = [
    ('resnet18_cifar100.py',
     VANILLA + 'cifar100/resnet18_cifar100_baseline.py', R18, 100, 32),
    ('resnet18_cifar100_mixup.py',
     VANILLA + 'cifar100/resnet18_cifar100_mixup_baseline.py', R18, 100, 32),
    ('resnet18_cifar100_cutmix.py',
     VANILLA + 'cifar100/resnet18_cifar100_cutmix_baseline.py', R18, 100, 32),
    ('wrn16-2_cifar100.py', VANILLA + 'cifar100/wrn16-2_cifar100_baseline.py',
     [64, 128, 256], 100, 32),
    ('resnet18_tinyimagenet.py',
     VANILLA + 'tinyimagenet/resnet18_tinyimagenet_baseline.py', R18, 200, 32),
    ('resnet18_cub.py', VANILLA + 'cub/resnet18_cub_baseline.py', R18, 200,
     64),
    ('resnet18_dogs.py', VANILLA + 'dogs/resnet18_dogs_baseline.py', R18, 120,
     64),
    ('resnet18_mit67.py', VANILLA + 'mit67/resnet18_mit67_baseline.py', R18,
     67, 64),
    ('resnet18_stanford40.py',
     VANILLA + 'stanford40/resnet18_stanford40_baseline.py', R18, 40, 64),
    ('resnet14_fashion-mnist.py', FM + 'resnet14_fashion-mnist_baseline.py',
     [32, 64, 128], 10, 28),
    ('resnet14_fashion-mnist-demo.py',
     FM + 'resnet14_fashion-mnist-demo_baseline.py', [32, 64, 128], 10, 28),
]
SEG = ('fpn_r50_4xb4-40k_voc12aug-512x512.py',
       VANILLA + 'voc12aug/fpn_r50_4xb4-40k_voc12aug-512x512_baseline.py')
SHARED_KEYS = ('train_dataloader', 'val_dataloader', 'test_dataloader',
               'val_evaluator', 'data_preprocessor', 'optim_wrapper',
               'param_scheduler', 'train_cfg', 'default_scope')


@functools.lru_cache(maxsize=None)
def _load(name):
    return Config.fromfile(osp.join(CONFIGS, name))


def load(name):
    """A config file (parsed once per session; callers get a copy)."""
    return copy.deepcopy(_load(name))


def build(cfg, probe=None):
    init_default_scope(cfg.get('default_scope') or 'mmpretrain')
    model_cfg = copy.deepcopy(cfg.model)
    if probe is not None:
        model_cfg['probe_input_shape'] = probe
    return MODELS.build(model_cfg)


@pytest.mark.parametrize('name,twin', [c[:2] for c in CLASSIFICATION] + [SEG])
def test_frskd_config_is_its_twin_plus_the_distiller(name, twin):
    cfg, base = load(name), load(twin)
    assert cfg.model.type == 'Distiller' and cfg.model.teacher is None
    assert cfg.model.student == base.model
    for key in SHARED_KEYS:
        assert cfg.get(key) == base.get(key), key
    assert 'mmkd' in cfg.custom_imports.imports


@pytest.mark.parametrize('name', [c[0] for c in CLASSIFICATION])
def test_classification_losses_are_methods_1_4(name):
    m = load(name).model
    stages = m.connectors.self_teacher.inputs
    assert m.connectors.self_teacher.type == 'BiFPNc'
    assert all(m.taps[s].startswith('student.') for s in stages)
    assert m.taps.s_logits == 'student.head.fc'
    ce, kd, at = (
        m.losses[k] for k in ('loss_self_teacher_ce', 'loss_kd', 'loss_at'))
    assert (ce.type, ce.loss_weight) == ('GTCrossEntropyLoss', 1.0)
    assert dict(ce.inputs) == dict(logits='self_teacher.logits', gt='gt_label')
    assert (kd.type, kd.tau, kd.loss_weight) == ('KDLoss', 4.0, 2.0)
    assert dict(kd.inputs) == dict(
        preds_S='s_logits', preds_T='self_teacher.logits')
    assert (at.type, at.loss_weight) == ('ATLoss', 100.0)
    assert list(at.inputs.preds_S) == list(stages)
    assert at.inputs.preds_T == 'self_teacher.feats'


@pytest.mark.parametrize('name,twin,widths,classes,size', CLASSIFICATION)
def test_classification_config_builds_with_inferred_channels(
        name, twin, widths, classes, size):
    cfg = load(name)
    channels = 1 if 'fashion' in name else 3
    model = build(cfg, probe=(channels, size, size))
    st = model.connectors['self_teacher']
    assert st.in_channels == [w // 2 for w in widths]
    assert st.out_channels == widths
    assert st.fc.in_features == widths[-1]
    assert st.fc.out_features == classes
    assert model.student.head.fc.out_features == classes
    assert type(model.student).__name__ == 'ImageClassifier'


def _pytorch_default_linear(fc):
    bound = fc.in_features**-0.5
    return fc.weight.abs().max() <= bound and \
        abs(fc.weight.std() - bound / 3**0.5) < 0.2 * bound / 3**0.5


def test_students_use_the_authors_init():
    torch.manual_seed(0)
    init_default_scope('mmpretrain')
    # cifarresnet18: PyTorch defaults everywhere (conv bound 1/sqrt(fan_in))
    m = MODELS.build(
        load(VANILLA + 'cifar100/resnet18_cifar100_baseline.py').model)
    m.init_weights()
    conv = m.backbone.layer1[0].conv1.weight
    assert conv.abs().max() <= (64 * 9)**-0.5
    assert torch.all(m.backbone.layer1[0].norm2.weight == 1)  # no zero-init
    assert _pytorch_default_linear(m.head.fc)
    assert m.head.fc.bias.abs().sum() > 0

    # ImageNet-style resnet18: Kaiming-normal fan-out convs, BN 1, PyTorch FC
    m = MODELS.build(load(VANILLA + 'cub/resnet18_cub_baseline.py').model)
    m.init_weights()
    conv = m.backbone.layer2[0].conv2.weight  # 128 out channels, 3x3
    assert abs(conv.std() - (2 / (128 * 9))**0.5) < 0.1 * (2 / 1152)**0.5
    assert torch.all(m.backbone.layer1[0].norm2.weight == 1)
    assert _pytorch_default_linear(m.head.fc)

    # wrn16x2: the backbone's init, FC with default weights and zero bias
    m = MODELS.build(
        load(VANILLA + 'cifar100/wrn16-2_cifar100_baseline.py').model)
    m.init_weights()
    assert _pytorch_default_linear(m.head.fc)
    assert torch.all(m.head.fc.bias == 0)


def test_segmentation_config_builds_and_trains_one_step():
    cfg = load(SEG[0])
    m = cfg.model
    assert m.connectors.self_teacher.type == 'BiFPNSeg'
    assert (m.losses.loss_kd.tau, m.losses.loss_kd.loss_weight) == (1.0, 1.0)
    assert m.losses.loss_at.loss_weight == 50.0
    assert m.losses.loss_self_teacher_ce.inputs.gt == 'gt_sem_seg'
    hook = cfg.custom_hooks[0]
    assert hook.type == 'mmkd.DistillLossRampUpHook'
    assert (hook.start + hook.length,
            hook.by_epoch) == (cfg.train_cfg.max_iters, False)
    assert hook.start == pytest.approx(2 / 3 * cfg.train_cfg.max_iters, 1)

    model = revert_sync_batchnorm(build(cfg))
    st = model.connectors['self_teacher']
    assert st.in_channels == [256] * 4 and st.num_classes == 21

    from mmseg.structures import SegDataSample
    from mmengine.structures import PixelData
    torch.manual_seed(0)
    samples = []
    for _ in range(2):
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=torch.randint(0, 21, (1, 64, 64)).long())
        s.set_metainfo(dict(img_shape=(64, 64), pad_shape=(64, 64)))
        samples.append(s)
    model.train()
    losses = model(torch.randn(2, 3, 64, 64), samples, mode='loss')
    for key in ('decode.loss_ce', 'distill.loss_self_teacher_ce',
                'distill.loss_kd', 'distill.loss_at'):
        assert torch.isfinite(losses[key]), key
    captured = {}
    st.register_forward_hook(lambda mod, a, out: captured.update(out))
    model(torch.randn(2, 3, 64, 64), samples, mode='loss')
    assert captured['logits'].shape == (2, 21, 16, 16)  # = FPNHead's
    assert [f.shape[-1] for f in captured['feats']] == [16, 8, 4, 2]
