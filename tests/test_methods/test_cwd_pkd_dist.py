"""The CWD, PKD and DIST configs (configs/cwd, configs/pkd, configs/dist):
they carry the authors' settings, and each trains through MMEngine's Runner
on tiny data in the real on-disk format (the paper's dataset swapped out,
the large networks made small): the student's weights change and the
teacher's do not, and the converted student is evaluated by its task
library in a process where mmkd cannot be imported."""
import os
import re
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

from mmkd.testing import make_cityscapes, make_coco, make_cub
from mmkd.testing.task_configs import cls_data, det_data, seg_data, write

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

LEVELS_0_3 = dict(
    preds_S=['s0', 's1', 's2', 's3'], preds_T=['t0', 't1', 't2', 't3'])
LOGITS = dict(preds_S='s_logits', preds_T='t_logits')
# config: (task, loss name, loss settings, loss inputs) as the authors ran
CONFIGS = {
    'cwd/cwd_pspnet_r101-r18-d8_4xb2-80k_cityscapes-512x1024.py':
    ('seg', 'loss_cwd', dict(type='CWDLoss', tau=4.0,
                             loss_weight=3.0), LOGITS),
    'cwd/cwd_retinanet_x101-r50_fpn_2x_coco.py':
    ('det', 'loss_cwd', dict(type='CWDLoss', tau=1.0,
                             loss_weight=5.0), LEVELS_0_3),
    'pkd/pkd_faster-rcnn_r101-r50_fpn_2x_coco.py':
    ('det', 'loss_pkd', dict(type='PKDLoss', loss_weight=6.0), LEVELS_0_3),
    'pkd/pkd_retinanet_x101-r50_fpn_2x_coco.py':
    ('det', 'loss_pkd', dict(type='PKDLoss', loss_weight=10.0), LEVELS_0_3),
    'pkd/pkd_fcos-x101_retinanet-r50_fpn_1x_coco.py':
    ('det', 'loss_pkd', dict(type='PKDLoss', loss_weight=10.0), LEVELS_0_3),
    'dist/dist_resnet34-resnet18_8xb32_in1k.py':
    ('cls', 'loss_dist',
     dict(type='DISTLoss', beta=1.0, gamma=1.0, tau=1.0,
          loss_weight=2.0), LOGITS),
    'dist/dist_resnet32x4-resnet8x4_1xb128-240e_cifar100.py':
    ('cls', 'loss_dist',
     dict(type='DISTLoss', beta=1.0, gamma=1.0, tau=4.0,
          loss_weight=2.0), LOGITS),
    'dist/dist_deeplabv3_r101-r18-d8_4xb2-80k_cityscapes-512x1024.py':
    ('seg', 'loss_dist', dict(type='DISTLoss', tau=1.0,
                              loss_weight=1.0), LOGITS),
}
DIST_SEG = 'dist/dist_deeplabv3_r101-r18-d8_4xb2-80k_cityscapes-512x1024.py'
# the authors' second term: 0.4 x DIST on the auxiliary heads' logits, the
# teacher's auxiliary head run by its tap
AUX_TAPS = {
    f'{m[0]}_aux': dict(
        path=f'{m}.auxiliary_head.conv_seg', run_head='auxiliary_head')
    for m in ('student', 'teacher')
}
AUX_LOSSES = {
    DIST_SEG: ('loss_dist_aux', dict(type='DISTLoss', tau=1.0,
                                     loss_weight=0.4),
               dict(preds_S='s_aux', preds_T='t_aux'))
}


def _path(name):
    return osp.join(ROOT, 'configs', name)


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_config_has_the_authors_settings(name):
    task, loss_name, settings, inputs = CONFIGS[name]
    assert len(open(_path(name)).read().splitlines()) <= 30
    cfg = Config.fromfile(_path(name))
    assert cfg.model.type == 'Distiller'
    loss = dict(cfg.model.losses[loss_name])
    assert loss.pop('inputs') == inputs
    assert loss == settings
    if inputs is LEVELS_0_3:  # FPN levels 0-3 of each detector's neck
        assert cfg.model.taps == {
            f'{p}{i}': dict(path=f'{m}.neck', index=i)
            for p, m in (('s', 'student'), ('t', 'teacher'))
            for i in range(4)
        }
    else:
        head = 'head.fc' if task == 'cls' else 'decode_head.conv_seg'
        assert cfg.model.taps == dict(
            s_logits=f'student.{head}',
            t_logits=f'teacher.{head}',
            **(AUX_TAPS if name in AUX_LOSSES else {}))
    assert set(cfg.model.losses) == {loss_name} | (
        {AUX_LOSSES[name][0]} if name in AUX_LOSSES else set())
    if name in AUX_LOSSES:
        aux_name, aux_settings, aux_inputs = AUX_LOSSES[name]
        aux = dict(cfg.model.losses[aux_name])
        assert aux.pop('inputs') == aux_inputs
        assert aux == aux_settings
    if 'cifar100' in name:  # the authors' optimizer and lr steps
        assert cfg.optim_wrapper.optimizer.nesterov is False
        assert cfg.param_scheduler.milestones == [150, 180, 210]
        assert cfg.optim_wrapper.optimizer.lr / \
            cfg.train_dataloader.batch_size == pytest.approx(0.05 / 64)


# ------------------------------------------------------- build-time checks
@pytest.fixture(scope='module')
def width8_teacher(tmp_path_factory):
    from mmkd.testing.task_configs import save_cifar_teacher
    return save_cifar_teacher(tmp_path_factory.mktemp('t') / 't.pth')


def _distiller(teacher_ckpt, loss, width=8, s_stage=3, connectors=None):
    """A Distiller of mmkd's tiny CIFAR ResNet-8 classifiers (stages of
    width, 2 width, 4 width channels at 16, 8, 4 px for a 16 px input)."""
    from mmengine.registry import init_default_scope

    from mmkd.registry import MODELS
    from mmkd.testing.task_configs import cifar_classifier
    init_default_scope('mmkd')
    return MODELS.build(
        dict(
            type='Distiller',
            student=cifar_classifier(width),
            teacher=dict(
                config=dict(model=cifar_classifier(8)),
                checkpoint=teacher_ckpt),
            taps=dict(
                s=f'student.backbone.layer{s_stage}',
                t='teacher.backbone.layer3'),
            connectors=connectors or {},
            losses=dict(
                loss=dict(
                    type=loss,
                    inputs=dict(
                        preds_S='adapt' if connectors else 's', preds_T='t'))),
            probe_input_shape=(1, 16, 16)))


@pytest.mark.parametrize('loss', ['CWDLoss', 'PKDLoss'])
def test_mismatched_maps_fail_at_build_with_the_fix(width8_teacher, loss):
    with pytest.raises(
            ValueError,
            match=r'level 0: the student map has 16 '
            r'channels and the teacher map 32.*ConvConnector'):
        _distiller(width8_teacher, loss, width=4)
    with pytest.raises(
            ValueError,
            match=r'level 0: the student map is 8x8 '
            r'and the teacher map 4x4.*Tap levels of the same '
            'stride'):
        _distiller(width8_teacher, loss, s_stage=2)
    # the fix the message names: a ConvConnector to the teacher's channels
    model = _distiller(
        width8_teacher,
        loss,
        width=4,
        connectors=dict(
            adapt=dict(type='ConvConnector', inputs='s', targets='t')))
    assert model.connectors['adapt'].conv.conv.out_channels == 32


# ----------------------------------------------------------------- training
def _save_random_teacher(teacher_cfg: str, out: str) -> str:
    from mmengine.registry import init_default_scope

    from mmkd.models.utils import build_task_model, load_model_config
    cfg = load_model_config(teacher_cfg)
    init_default_scope(cfg.get('default_scope', 'mmkd'))
    torch.manual_seed(0)
    torch.save({'state_dict': build_task_model(cfg.model).state_dict()}, out)
    return out


# Small networks in place of the papers' large ones (same families).
TINY_DET_BACKBONE = """
    backbone=dict(_delete_=True, type='ResNet', depth=18, num_stages=4,
                  out_indices=(0, 1, 2, 3), frozen_stages=1,
                  norm_cfg=dict(type='BN', requires_grad=True),
                  norm_eval=True, style='pytorch', init_cfg=None),
    neck=dict(in_channels=[64, 128, 256, 512]),"""
TINY_SEG = """
    pretrained=None, backbone=dict(depth=18),
    decode_head=dict(in_channels=512, channels=128),
    auxiliary_head=dict(in_channels=256, channels=64),"""


def tiny_config(tmp, name: str) -> str:
    """The shipped config with the tiny data of its task library, small
    networks, a random teacher checkpoint and one training iteration."""
    task = CONFIGS[name][0]
    teacher = Config.fromfile(_path(name)).model.teacher.config
    if task == 'seg':
        data = make_cityscapes(
            str(tmp / 'data'), num_train=2, num_val=1, size=(96, 64))
        tiny_teacher, data_text = TINY_SEG, seg_data(data)
        student = TINY_SEG + '\n    data_preprocessor=dict(size=crop_size),'
        run = 'train_cfg = dict(max_iters=1, val_interval=1)\n'
    elif task == 'det':
        data = make_coco(str(tmp / 'data'), num_train=2, num_val=1, size=64)
        tiny_teacher, data_text = TINY_DET_BACKBONE, det_data(data)
        classes = len(data['classes'])
        head = (f'roi_head=dict(bbox_head=dict(num_classes={classes}))' if
                'faster' in name else f'bbox_head=dict(num_classes={classes})')
        student = ('\n    backbone=dict(depth=18, init_cfg=None),'
                   '\n    neck=dict(in_channels=[64, 128, 256, 512]),'
                   f'\n    {head},')
        run = 'train_cfg = dict(max_epochs=1, val_interval=1)\n'
    else:
        data = make_cub(str(tmp / 'data'), num_classes=3, per_class=2, size=40)
        tiny_teacher, student, data_text = '', '', cls_data(data)
        run = ("train_dataloader['dataset']['indices'] = 2  # 1 iteration\n"
               'train_cfg = dict(max_epochs=1, val_interval=1)\n')
    if tiny_teacher:
        teacher = write(
            tmp / 'teacher.py',
            f'_base_ = [{teacher!r}]\nmodel = dict({tiny_teacher})\n')
    ckpt = _save_random_teacher(teacher, str(tmp / 'teacher.pth'))
    size = 32 if task == 'cls' else 64
    return write(
        tmp / 'tiny.py', f'_base_ = [{_path(name)!r}]\n', data_text,
        f'model = dict(\n    student=dict({student}),\n'
        f'    teacher=dict(config={teacher!r}, checkpoint={ckpt!r}),\n'
        f'    probe_input_shape=(3, {size}, {size}))\n', run,
        'default_hooks = dict(logger=dict(interval=1),\n'
        '                     checkpoint=dict(interval=1))\n')


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_config_trains_and_its_student_loads_without_mmkd(
        name, tmp_path, load_tool):
    from mmengine.runner import Runner
    pytest.importorskip('mmcv.ops', reason='mmdet/mmseg need mmcv ops')
    task, loss_name = CONFIGS[name][:2]
    cfg = Config.fromfile(tiny_config(tmp_path, name))
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    model = runner.model
    student = {k: v.clone() for k, v in model.student.state_dict().items()}
    teacher = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    runner.train()

    names = [loss_name] + ([AUX_LOSSES[name][0]] if name in AUX_LOSSES else [])
    for loss_name in names:
        loss = runner.message_hub.get_scalar(f'train/distill.{loss_name}')
        assert loss is not None and torch.isfinite(
            torch.tensor(loss.current())) and loss.current() > 0
    after = model.student.state_dict()
    moved = [
        k for k, v in student.items()
        if v.is_floating_point() and not torch.equal(v, after[k])
    ]
    assert any(k.startswith('backbone.') for k in moved), moved
    assert any(
        k.startswith(('head.', 'bbox_head.', 'roi_head.', 'decode_head.'))
        for k in moved), moved
    if name in AUX_LOSSES:
        assert any(k.startswith('auxiliary_head.') for k in moved), moved
    assert all(
        torch.equal(v,
                    model.teacher.state_dict()[k]) for k, v in teacher.items())

    ckpts = [f for f in os.listdir(cfg.work_dir) if f.endswith('.pth')]
    student_ckpt = str(tmp_path / 'student.pth')
    load_tool('convert_to_student.py').convert(
        cfg.filename, osp.join(cfg.work_dir, sorted(ckpts)[-1]), student_ckpt)
    converted = torch.load(student_ckpt, weights_only=True)['state_dict']
    assert set(converted) == set(after)
    if 'cifar100' in name:
        # the CIFAR students are mmkd's own backbones: the student config
        # keeps custom_imports=['mmkd'] and loads with mmkd
        assert 'mmkd.CIFARResNet' in open(tmp_path / 'student.py').read()
        return
    proc = subprocess.run([
        sys.executable, 'tools/experiments/evaluate_student_without_mmkd.py',
        str(tmp_path / 'student.py'), student_ckpt, '--work-dir',
        str(tmp_path / 'test')
    ],
                          cwd=ROOT,
                          capture_output=True,
                          text=True,
                          timeout=600,
                          env=dict(os.environ, PYTHONWARNINGS='ignore'))
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = proc.stdout + proc.stderr
    assert f'Load checkpoint from {student_ckpt}' in out
    # the test loop reached its last batch
    assert re.search(r'(Epoch|Iter)\(test\) \[(\d+)/\2\]', out)
    # a random detector may score no box above the test threshold, and then
    # CocoMetric reports nothing
    if task != 'det':
        assert {'cls': 'accuracy/top1', 'seg': 'mIoU'}[task] in out
