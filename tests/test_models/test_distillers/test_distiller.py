"""The Distiller on real mmpretrain classifiers (tiny CIFAR ResNets)."""
import copy

import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import init_default_scope
from mmpretrain.structures import DataSample

from mmkd.models.distillers import TapError
from mmkd.registry import MODELS


def classifier(depth: int = 18, num_classes: int = 5) -> dict:
    return dict(
        type='ImageClassifier',
        backbone=dict(type='ResNet_CIFAR', depth=depth, in_channels=1),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(
            type='LinearClsHead',
            num_classes=num_classes,
            in_channels=512,
            loss=dict(type='CrossEntropyLoss')),
        data_preprocessor=dict(
            type='ClsDataPreprocessor', mean=[0.], std=[255.]))


@pytest.fixture(scope='module')
def teacher_ckpt(tmp_path_factory):
    init_default_scope('mmpretrain')
    teacher = MODELS.build(dict(classifier(34), _scope_='mmpretrain'))
    path = tmp_path_factory.mktemp('teacher') / 'teacher.pth'
    torch.save({'state_dict': teacher.state_dict()}, path)
    return str(path)


def distiller_cfg(teacher_ckpt, **overrides):
    cfg = dict(
        type='Distiller',
        student=classifier(18),
        teacher=dict(model=classifier(34), checkpoint=teacher_ckpt),
        taps=dict(
            s4='student.backbone.layer4',
            t4='teacher.backbone.layer4',
        ),
        connectors=dict(hint=dict(type='ConvConnector', inputs='s4',
                                  targets='t4')),
        losses=dict(
            loss_fitnet=dict(
                type='FitNetLoss', inputs=dict(preds_S='hint',
                                               preds_T='t4'))),
        probe_input_shape=(1, 16, 16))
    cfg.update(overrides)
    return cfg


def build(cfg):
    init_default_scope('mmpretrain')
    return MODELS.build(dict(cfg, _scope_='mmkd'))


def batch(model, n=4, size=16):
    torch.manual_seed(0)
    data = dict(
        inputs=[torch.randint(0, 256, (1, size, size)).float()
                for _ in range(n)],
        data_samples=[DataSample().set_gt_label(i % 5) for i in range(n)])
    return model.data_preprocessor(data, True)


def test_losses_are_student_losses_plus_prefixed_distill_losses(teacher_ckpt):
    model = build(distiller_cfg(teacher_ckpt))
    model.train()
    data = batch(model)
    losses = model(**data, mode='loss')
    assert set(losses) == {'student.loss', 'distill.loss_fitnet'}

    # Independent re-computation with the plain models.
    with torch.no_grad():
        t4 = model.teacher.backbone(data['inputs'])[-1]
    s4 = model.student.backbone(data['inputs'])[-1]
    expected = F.mse_loss(model.connectors['hint'](s4), t4)
    torch.testing.assert_close(losses['distill.loss_fitnet'], expected)
    student_loss = model.student.loss(data['inputs'], data['data_samples'])
    torch.testing.assert_close(losses['student.loss'], student_loss['loss'])


def test_teacher_is_frozen_hidden_and_stops_early(teacher_ckpt):
    model = build(distiller_cfg(teacher_ckpt))
    model.train()
    assert not model.teacher.training
    assert all(not p.requires_grad for p in model.teacher.parameters())
    params = {id(p) for p in model.parameters()}
    assert not any(id(p) in params for p in model.teacher.parameters())
    assert not any(k.startswith('teacher') for k in model.state_dict())
    before = copy.deepcopy(model.teacher.state_dict())

    head_calls = []
    model.teacher.head.register_forward_hook(
        lambda *args: head_calls.append(1))
    optim = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(2):
        losses = model(**batch(model), mode='loss')
        optim.zero_grad()
        sum(losses.values()).backward()
        optim.step()
    assert head_calls == []  # the teacher stopped after backbone.layer4
    for key, value in model.teacher.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_distill_gradients_reach_student_and_connector_only(teacher_ckpt):
    model = build(distiller_cfg(teacher_ckpt))
    losses = model(**batch(model), mode='loss')
    losses['distill.loss_fitnet'].backward()
    assert model.connectors['hint'].conv.conv.weight.grad.abs().sum() > 0
    assert model.student.backbone.layer4[0].conv1.weight.grad.abs().sum() > 0
    # the head is after the tapped layer: no distillation gradient
    assert model.student.head.fc.weight.grad is None
    assert all(p.grad is None for p in model.teacher.parameters())


def test_predict_and_tensor_modes_are_the_students(teacher_ckpt):
    model = build(distiller_cfg(teacher_ckpt)).eval()
    data = batch(model)
    ours = model(**data, mode='predict')
    theirs = model.student(**data, mode='predict')
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a.pred_score, b.pred_score)
    torch.testing.assert_close(
        model(data['inputs'], mode='tensor'),
        model.student(data['inputs'], mode='tensor'))


def test_gt_cross_entropy_equals_the_students_head_loss(teacher_ckpt):
    cfg = distiller_cfg(
        teacher_ckpt,
        teacher=None,
        taps=dict(s_logits='student.head.fc'),
        connectors={},
        losses=dict(
            loss_ce=dict(
                type='GTCrossEntropyLoss',
                inputs=dict(logits='s_logits', gt='gt_label'))))
    model = build(cfg)
    losses = model(**batch(model), mode='loss')
    torch.testing.assert_close(losses['distill.loss_ce'],
                               losses['student.loss'])


def test_channels_are_inferred_and_checked(teacher_ckpt):
    model = build(distiller_cfg(teacher_ckpt))
    assert model.connectors['hint'].conv.conv.in_channels == 512
    cfg = distiller_cfg(teacher_ckpt)
    cfg['connectors']['hint']['in_channels'] = 256
    with pytest.raises(ValueError, match='in_channels=256 is given.*512'):
        build(cfg)


def test_preactivation_tap_of_inplace_relu(teacher_ckpt):
    # mmpretrain's BasicBlock calls its in-place ReLU twice; the input of the
    # second call is the residual sum before the block's last ReLU.
    cfg = distiller_cfg(
        teacher_ckpt,
        taps=dict(
            pre=dict(path='teacher.backbone.layer4.2.relu', io='input',
                     call=1),
            post='teacher.backbone.layer4'),
        connectors={},
        losses=dict(
            loss_fitnet=dict(
                type='FitNetLoss', inputs=dict(preds_S='pre',
                                               preds_T='post'))))
    model = build(cfg)
    data = batch(model)
    values, _ = model._record(data['inputs'], data['data_samples'], 'tensor')
    pre, post = values['pre'], values['post']
    assert (pre < 0).any()
    torch.testing.assert_close(F.relu(pre), post)


@pytest.mark.parametrize('change, error, match', [
    (dict(taps=dict(s4='student.backbone.layer5',
                    t4='teacher.backbone.layer4')),
     ValueError, 'no module .backbone.layer5.*Did you mean'),
    (dict(taps=dict(s4='pupil.backbone.layer4', t4='teacher.backbone.layer4')),
     ValueError, "must start with 'student.'"),
    (dict(losses=dict(loss_fitnet=dict(type='FitNetLoss',
                                       inputs=dict(preds_S='hint')))),
     ValueError, r"\['preds_T'\] are fed by no tap"),
    (dict(losses=dict(loss_fitnet=dict(
        type='FitNetLoss', inputs=dict(preds_S='hint', preds_T='t4',
                                       weight='t4')))),
     ValueError, 'not arguments of its forward'),
    (dict(losses=dict(loss_fitnet=dict(
        type='FitNetLoss', inputs=dict(preds_S='hint', preds_T='t5')))),
     ValueError, "refers to 't5', which no tap or connector provides"),
    (dict(losses=dict(fitnet=dict(
        type='FitNetLoss', inputs=dict(preds_S='hint', preds_T='t4')))),
     ValueError, "must contain 'loss'"),
    (dict(connectors={}, taps=dict(s3='student.backbone.layer3',
                                   t4='teacher.backbone.layer4'),
          losses=dict(loss_fitnet=dict(
              type='FitNetLoss', inputs=dict(preds_S='s3', preds_T='t4')))),
     ValueError, 'does not accept the probe features'),
])
def test_bad_config_errors(teacher_ckpt, change, error, match):
    with pytest.raises(error, match=match):
        build(distiller_cfg(teacher_ckpt, **change))


def test_teacher_checkpoint_errors(teacher_ckpt, tmp_path):
    cfg = distiller_cfg(teacher_ckpt)
    cfg['teacher'] = dict(model=classifier(34),
                          checkpoint=str(tmp_path / 'nope.pth'))
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        build(cfg)
    cfg['teacher'] = dict(model=classifier(34), checkpoint=None)
    with pytest.raises(ValueError, match='checkpoint` is required'):
        build(cfg)
    # a ResNet-18 checkpoint for a ResNet-34 teacher
    init_default_scope('mmpretrain')
    wrong = MODELS.build(dict(classifier(18), _scope_='mmpretrain'))
    path = tmp_path / 'r18.pth'
    torch.save({'state_dict': wrong.state_dict()}, path)
    cfg['teacher'] = dict(model=classifier(34), checkpoint=str(path))
    with pytest.raises(ValueError, match=r'r18.pth.*\n.*missing keys: '
                       r'backbone.layer1.2'):
        build(cfg)


def test_tap_on_module_called_twice_needs_call_index(teacher_ckpt):
    cfg = distiller_cfg(
        teacher_ckpt,
        taps=dict(s='student.backbone.layer4.1.relu',
                  t='teacher.backbone.layer4'),
        connectors={},
        losses=dict(loss_at=dict(type='FitNetLoss',
                                 inputs=dict(preds_S='s', preds_T='t'))))
    with pytest.raises(TapError, match='ran 2 times.*set call='):
        build(cfg)
