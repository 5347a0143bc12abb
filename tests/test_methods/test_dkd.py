"""DKD as a config of the generic Distiller: the worked example of
docs/en/extending.md (configs/dkd)."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmpretrain.structures import DataSample

from mmkd.models.utils import build_task_model, load_model_config
from mmkd.registry import HOOKS, MODELS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO, 'configs', 'dkd',
                  'dkd_resnet32x4-resnet8x4_1xb128-240e_cifar100.py')


@pytest.fixture(autouse=True, scope='module')
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def teacher_ckpt(tmp_path_factory):
    """A randomly initialised resnet32x4 saved as the config's teacher."""
    cfg = Config.fromfile(CONFIG)
    init_default_scope('mmpretrain')
    teacher = build_task_model(
        dict(
            load_model_config(cfg.model.teacher.config).model,
            _scope_='mmpretrain'))
    path = str(tmp_path_factory.mktemp('dkd') / 'resnet32x4.pth')
    torch.save({'state_dict': teacher.state_dict()}, path)
    return path


def _build(teacher_ckpt, drop_inputs=()):
    cfg = Config.fromfile(CONFIG)
    init_default_scope('mmpretrain')
    cfg.model.teacher.checkpoint = teacher_ckpt
    cfg.model.probe_input_shape = (3, 16, 16)  # a tiny probe
    for arg in drop_inputs:
        cfg.model.losses.loss_dkd.inputs.pop(arg)
    return cfg, MODELS.build(cfg.model)


def _batch(n=4, size=16):
    """A raw batch, as a dataloader gives it."""
    torch.manual_seed(0)
    return dict(
        inputs=[
            torch.randint(0, 256, (3, size, size)).float() for _ in range(n)
        ],
        data_samples=[
            DataSample().set_gt_label(i * 37 % 100) for i in range(n)
        ])


def _reference_dkd(s, t, gt, alpha, beta, T):
    """float64, the non-target distribution renormalised exactly (the
    authors' -1000 mask, in the limit)."""
    s, t = s.double() / T, t.double() / T
    p_s, p_t = s.softmax(1), t.softmax(1)
    total = 0.
    for i, g in enumerate(gt.tolist()):
        b_s = torch.stack([p_s[i, g], 1 - p_s[i, g]])
        b_t = torch.stack([p_t[i, g], 1 - p_t[i, g]])
        tckd = (b_t * (b_t.log() - b_s.log())).sum()
        keep = torch.arange(s.shape[1]) != g
        q_s = p_s[i, keep] / p_s[i, keep].sum()
        q_t = p_t[i, keep] / p_t[i, keep].sum()
        nckd = (q_t * (q_t.log() - q_s.log())).sum()
        total = total + alpha * tckd + beta * nckd
    return total * T * T / len(gt)


def test_guide_shows_the_shipped_config():
    """docs/en/extending.md walks through this very file."""
    guide = open(osp.join(REPO, 'docs', 'en', 'extending.md')).read()
    assert open(CONFIG).read().strip() in guide


def test_config_settings_are_the_authors():
    cfg = Config.fromfile(CONFIG)
    loss = cfg.model.losses.loss_dkd
    assert (loss.type, loss.alpha, loss.beta, loss.tau) == ('DKDLoss', 1.0,
                                                            8.0, 4.0)
    assert loss.inputs.gt == 'gt_label'
    assert cfg.train_cfg.max_epochs == 240
    assert cfg.param_scheduler.milestones == [150, 180, 210]
    assert cfg.optim_wrapper.optimizer.nesterov is False
    assert cfg.optim_wrapper.optimizer.weight_decay == 5e-4
    # lr per sample as the authors' batch 64 / lr 0.05
    assert cfg.optim_wrapper.optimizer.lr / cfg.train_dataloader.batch_size \
        == pytest.approx(0.05 / 64)
    # mdistiller: min(1, epoch / 20) with epochs counted from 1
    hook_cfg, = cfg.custom_hooks
    hook = HOOKS.build(copy.deepcopy(hook_cfg))
    assert [hook.scale(e, 0) for e in (0, 1, 18, 19, 30)
            ] == [1 / 20, 2 / 20, 19 / 20, 1.0, 1.0]


def test_config_builds_and_one_train_step(teacher_ckpt):
    cfg, model = _build(teacher_ckpt)
    assert type(model).__name__ == 'Distiller'
    model.train()
    data = model.data_preprocessor(_batch(), True)
    losses = model(**data, mode='loss')
    assert set(losses) == {'student.loss', 'distill.loss_dkd'}

    # The logged loss is DKD of the two classifiers' logits and the labels.
    x = data['inputs']
    gt = torch.cat([s.gt_label for s in data['data_samples']])
    with torch.no_grad():
        s_logits = model.student(x, mode='tensor')
        t_logits = model.teacher(x, mode='tensor')
    expected = _reference_dkd(s_logits, t_logits, gt, 1.0, 8.0, 4.0)
    torch.testing.assert_close(
        losses['distill.loss_dkd'].double(), expected, rtol=1e-4, atol=1e-6)

    # DKD's gradient reaches the student's backbone and classifier, never
    # the teacher.
    model.zero_grad()
    losses['distill.loss_dkd'].backward()
    for p in (model.student.head.fc.weight,
              model.student.backbone.conv1.weight):
        assert p.grad is not None and torch.isfinite(p.grad).all()
        assert p.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad
               for p in model.teacher.parameters())

    # One optimizer step with the config's own optimizer wrapper, at the
    # first epoch's warm-up scale: finite loss, finite student gradients
    # (seen during backward), student updated, teacher untouched.
    model.zero_grad()
    model.loss_scales['loss_dkd'] = 1 / 20
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    assert optim_wrapper.optimizer.defaults['nesterov'] is False
    seen = {}
    fc = model.student.head.fc.weight
    handle = fc.register_hook(lambda g: seen.setdefault('fc', g.clone()))
    before = fc.detach().clone()
    teacher_before = [p.detach().clone() for p in model.teacher.parameters()]
    log_vars = model.train_step(_batch(), optim_wrapper)
    handle.remove()
    dkd = log_vars['distill.loss_dkd']
    assert torch.isfinite(torch.as_tensor(dkd))
    torch.testing.assert_close(
        torch.as_tensor(dkd, dtype=torch.float64),
        expected / 20,
        rtol=1e-4,
        atol=1e-6)
    assert torch.isfinite(seen['fc']).all() and seen['fc'].abs().sum() > 0
    assert not torch.equal(fc.detach(), before)
    assert all(
        torch.equal(p, q)
        for p, q in zip(model.teacher.parameters(), teacher_before))


def test_missing_ground_truth_fails_at_build(teacher_ckpt):
    with pytest.raises(ValueError, match="gt='gt_label'"):
        _build(teacher_ckpt, drop_inputs=['gt'])
