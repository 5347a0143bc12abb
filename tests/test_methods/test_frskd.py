"""FRSKD as a config of the generic Distiller.

Losses as in docs/en/methods.md#frskd-losses.

The distiller is built from the shipped CIFAR-100 ResNet-18 config and run
on 16x16 inputs with a batch of 4; every expected value is recomputed here
with plain torch from the student's and the self-teacher's modules.
"""
import copy
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.structures import DataSample

from mmkd.registry import MODELS

CONFIGS = osp.join(osp.dirname(__file__), '..', '..', 'configs', 'frskd')
B, SIZE, K = 4, 16, 100


def build(name):
    cfg = Config.fromfile(osp.join(CONFIGS, name))
    init_default_scope('mmpretrain')
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg['probe_input_shape'] = (3, SIZE, SIZE)
    model = MODELS.build(
        dict(model_cfg, data_preprocessor=cfg.get('data_preprocessor')))
    model.train()
    return model


@pytest.fixture(scope='module')
def frskd():
    """The CIFAR-100 ResNet-18 FRSKD distiller, built once."""
    return build('resnet18_cifar100.py')


@pytest.fixture
def model(frskd):
    frskd.zero_grad(set_to_none=True)
    return frskd


def batch(model, seed=0, training=True):
    g = torch.Generator().manual_seed(seed)
    data = dict(
        inputs=[
            torch.randint(0, 256, (3, SIZE, SIZE), generator=g).to(torch.uint8)
            for _ in range(B)
        ],
        data_samples=[DataSample().set_gt_label(7 * i % K) for i in range(B)])
    return model.data_preprocessor(data, training)


def student_forward(student, x):
    """ResNet_CIFAR written out: stem (no max-pool), four stages, GAP, FC."""
    bb = student.backbone
    h = bb.relu(bb.norm1(bb.conv1(x)))
    feats = []
    for name in ('layer1', 'layer2', 'layer3', 'layer4'):
        h = getattr(bb, name)(h)
        feats.append(h)
    return feats, student.head.fc(h.mean(dim=(2, 3)))


def kd_formula(s, t, T=4.0):
    """KL(softmax(t/T) || softmax(s/T)), summed over classes, times T^2,
    averaged over the batch; t treated as a constant."""
    p_t = F.softmax(t.detach() / T, dim=1)
    return (p_t * (torch.log(p_t) - F.log_softmax(s / T, dim=1))).sum(1) \
        .mean() * T * T


def at_formula(fs, ft):
    """mean over B*H*W of the squared difference of the L2-normalised
    channel means of f^2."""

    def att(f):
        a = f.pow(2).mean(1).flatten(1)
        return a / a.norm(dim=1, keepdim=True).clamp_min(1e-12)

    return (att(fs) - att(ft.detach())).pow(2).mean()


def test_total_loss_is_methods_1_4(model):
    data = batch(model)
    torch.manual_seed(0)
    losses = model(**data, mode='loss')
    assert set(losses) == {
        'student.loss', 'distill.loss_self_teacher_ce', 'distill.loss_kd',
        'distill.loss_at'
    }
    total = sum(losses.values())

    # Independent: CE(s) + CE(t) + alpha KD + beta sum_i AT_i, alpha 2,
    # beta 100, T 4, with the student and self-teacher modules run by hand.
    y = torch.cat([s.gt_label for s in data['data_samples']])
    feats, logit_s = student_forward(model.student, data['inputs'])
    out = model.connectors['self_teacher'](feats)
    feats_t, logit_t = out['feats'], out['logits']
    assert [tuple(f.shape[1:]) for f in feats_t] == [(128, 16, 16),
                                                     (256, 8, 8), (512, 4, 4),
                                                     (1024, 2, 2)]
    expected = (
        F.cross_entropy(logit_s, y) + F.cross_entropy(logit_t, y) +
        2.0 * kd_formula(logit_s, logit_t) +
        100.0 * sum(at_formula(a, b) for a, b in zip(feats, feats_t)))
    torch.testing.assert_close(total, expected)
    torch.testing.assert_close(losses['student.loss'],
                               F.cross_entropy(logit_s, y))
    torch.testing.assert_close(losses['distill.loss_kd'],
                               2.0 * kd_formula(logit_s, logit_t))


def _grads(module):
    return [p.grad for p in module.parameters()]


@pytest.mark.parametrize('loss_name', ['distill.loss_kd', 'distill.loss_at'])
def test_distillation_terms_do_not_train_the_self_teacher(model, loss_name):
    losses = model(**batch(model), mode='loss')
    losses[loss_name].backward()
    for g in _grads(model.connectors['self_teacher']):
        assert g is None or g.abs().max() == 0
    conv = model.student.backbone.layer1[0].conv1.weight
    assert conv.grad is not None and conv.grad.abs().sum() > 0
    if loss_name == 'distill.loss_kd':
        assert model.student.head.fc.weight.grad.abs().sum() > 0


def test_self_teacher_ce_trains_the_student_backbone_too(model):
    losses = model(**batch(model), mode='loss')
    losses['distill.loss_self_teacher_ce'].backward()
    # As the authors' code: the student features are not detached.
    for name in ('layer1', 'layer4'):
        w = getattr(model.student.backbone, name)[0].conv1.weight
        assert w.grad is not None and w.grad.abs().sum() > 0, name
    assert model.connectors['self_teacher'].fc.weight.grad.abs().sum() > 0
    assert model.student.head.fc.weight.grad is None  # not on its path


def test_frskd_trains_with_mixup_and_soft_targets():
    model = build('resnet18_cifar100_mixup.py')
    raw = batch(model, training=False)  # normalised, not mixed
    y = torch.cat([s.gt_label for s in raw['data_samples']])

    np.random.seed(3)
    torch.manual_seed(3)
    data = batch(model, training=True)  # mmpretrain's Mixup
    # Mixup draws lam ~ Beta(0.2, 0.2), then a permutation: replay them.
    np.random.seed(3)
    torch.manual_seed(3)
    lam = np.random.beta(0.2, 0.2)
    perm = torch.randperm(B)
    torch.testing.assert_close(
        data['inputs'], lam * raw['inputs'] + (1 - lam) * raw['inputs'][perm])
    score = torch.stack([s.gt_score for s in data['data_samples']])
    torch.testing.assert_close(
        score,
        lam * F.one_hot(y, K).float() +
        (1 - lam) * F.one_hot(y[perm], K).float())

    captured = {}
    model.connectors['self_teacher'].register_forward_hook(
        lambda m, args, out: captured.update(out))
    optim = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    before = model.student.backbone.conv1.weight.detach().clone()
    losses = model(**data, mode='loss')
    assert all(torch.isfinite(v) for v in losses.values())
    # the authors' mixed CE: lam * CE(y_a) + (1 - lam) * CE(y_b)
    logit_t = captured['logits']
    torch.testing.assert_close(
        losses['distill.loss_self_teacher_ce'],
        lam * F.cross_entropy(logit_t, y) +
        (1 - lam) * F.cross_entropy(logit_t, y[perm]))
    optim.zero_grad()
    sum(losses.values()).backward()
    optim.step()
    assert not torch.equal(before, model.student.backbone.conv1.weight)
    assert all(torch.isfinite(p).all() for p in model.parameters())
