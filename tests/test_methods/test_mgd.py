"""The MGD configs (configs/mgd): the authors' settings, errors at build,
and one training iteration of each on tiny data in the real formats, whose
converted student loads in its task library without mmkd."""
import copy
import glob
import os.path as osp
import sys
import textwrap

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import init_default_scope

from mmkd.models.utils import load_model_config
from mmkd.registry import MODELS
from mmkd.testing import make_cityscapes, make_coco, make_cub
from mmkd.testing.task_configs import (cifar_classifier, cls_config,
                                       det_config, save_cifar_teacher,
                                       seg_config)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(ROOT, 'tests', 'test_tools'))
from test_train_distill import check_loads_without_mmkd  # noqa: E402
from test_train_distill import run, save_random_teacher  # noqa: E402

CONFIGS = osp.join(ROOT, 'configs', 'mgd')
CLS = 'mgd_resnet34-resnet18_8xb32_in1k.py'
DET = 'mgd_retinanet_x101-r50_fpn_2x_coco.py'
PSP = 'mgd_pspnet_r101-r18-d8_4xb2-80k_cityscapes-512x1024.py'
DLV3 = 'mgd_pspnet-r101-deeplabv3-r18-d8_4xb2-80k_cityscapes-512x1024.py'


@pytest.fixture(autouse=True, scope='module')
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# (config, alpha, lambda, mask type): the authors' configs
# cls/configs/distillers/mgd/res34_distill_res18_img.py, det/.../retina_rx101_
# 64x4d_distill_retina_r50_fpn_2x_coco.py, seg/.../psp_r101_distill_{psp,
# deepv3}_r18_40k_512x512_city.py
SETTINGS = [(CLS, 7e-5, 0.15, 'channel', ('ResNet', 34)),
            (DET, 2e-5, 0.65, 'spatial', ('ResNeXt', 101)),
            (PSP, 2e-5, 0.75, 'spatial', ('ResNetV1c', 101)),
            (DLV3, 2e-5, 0.75, 'spatial', ('ResNetV1c', 101))]


@pytest.mark.parametrize('name,alpha,lam,mask_type,teacher', SETTINGS)
def test_config_settings_are_the_authors(name, alpha, lam, mask_type, teacher):
    path = osp.join(CONFIGS, name)
    assert len(open(path).read().strip().splitlines()) <= 30
    cfg = Config.fromfile(path)
    backbone = load_model_config(cfg.model.teacher.config).model.backbone
    assert (backbone.type, backbone.depth) == teacher
    mgd = cfg.model.connectors.mgd
    loss = cfg.model.losses.loss_mgd
    got = (mgd.type, mgd.mask_ratio, mgd.get('mask_type', 'spatial'))
    assert got == ('MGDConnector', lam, mask_type)
    got = (loss.type, loss.alpha, loss.get('loss_weight', 1.0))
    assert got == ('MGDLoss', alpha, 1.0)
    assert loss.inputs == dict(preds_S='mgd', preds_T=mgd.targets)
    if name == DET:
        # init_student=True: neck and head from the teacher's checkpoint
        student, ckpt = cfg.model.student, cfg.model.teacher.checkpoint
        assert student.neck.init_cfg == dict(
            type='Pretrained', prefix='neck.', checkpoint=ckpt)
        assert student.bbox_head.init_cfg == dict(
            type='Pretrained', prefix='bbox_head.', checkpoint=ckpt)
        assert cfg.optim_wrapper.clip_grad == dict(max_norm=35, norm_type=2)
        # the neck's 5 outputs are the authors' fpn_convs.0-4 taps
        assert student.neck.add_extra_convs == 'on_input'
        assert not student.neck.get('relu_before_extra_convs', False)
        assert student.neck.num_outs == 5


# --------------------------------------------------------------------------
# errors at build
# --------------------------------------------------------------------------
def _distiller(ckpt, taps, inputs, targets, preds_T=None):
    init_default_scope('mmpretrain')
    return MODELS.build(
        dict(
            type='mmkd.Distiller',
            student=cifar_classifier(4),
            teacher=dict(model=cifar_classifier(8), checkpoint=ckpt),
            taps=taps,
            connectors=dict(
                mgd=dict(type='MGDConnector', inputs=inputs, targets=targets)),
            losses=dict(
                loss_mgd=dict(
                    type='MGDLoss',
                    alpha=2e-5,
                    inputs=dict(preds_S='mgd', preds_T=preds_T or targets))),
            probe_input_shape=(1, 16, 16)))


def test_bad_wiring_fails_at_build_with_the_fix(tmp_path):
    ckpt = save_cifar_teacher(tmp_path / 'teacher.pth')
    taps = dict(
        s1='student.backbone.layer1',
        s2='student.backbone.layer2',
        t1='teacher.backbone.layer1',
        t2='teacher.backbone.layer2',
        t3='teacher.backbone.layer3')
    # student stage 2 (8x8) against teacher stage 3 (4x4)
    with pytest.raises(
            ValueError,
            match='tap a student and a teacher level '
            'of the same stride'):
        _distiller(ckpt, taps, 's2', 't3')
    with pytest.raises(ValueError, match='same number of taps'):
        _distiller(ckpt, taps, ['s1', 's2'], ['t1', 't2', 't3'])
    with pytest.raises(ValueError, match='same levels'):
        _distiller(ckpt, taps, ['s1', 's2'], ['t1', 't2'], ['t1'])
    # the right wiring builds: 4 -> 8 and 8 -> 16 channels, aligned
    model = _distiller(ckpt, taps, ['s1', 's2'], ['t1', 't2'])
    levels = model.connectors.mgd.levels
    assert [(lv.in_channels, lv.out_channels) for lv in levels] == [(4, 8),
                                                                    (8, 16)]


# --------------------------------------------------------------------------
# one training iteration of every config, then the converted student
# --------------------------------------------------------------------------
class Snapshot(Hook):
    """The student's and teacher's weights after init, before the step."""

    def before_train(self, runner):
        model = runner.model
        self.student = {
            k: v.detach().clone()
            for k, v in model.student.state_dict().items()
        }
        self.teacher = [p.detach().clone() for p in model.teacher.parameters()]
        self.init_from_teacher = {
            k: torch.equal(v,
                           model.teacher.state_dict()[k])
            for k, v in self.student.items()
            if k.startswith(('neck.', 'bbox_head.'))
        }


def tiny_config(name, tmp, task_cfg, teacher_cfg, teacher_ckpt):
    """The released config with the tiny data and loaders of ``task_cfg``,
    the tiny ``teacher``, one iteration and no download."""
    cfg = Config.fromfile(osp.join(CONFIGS, name))
    task = Config.fromfile(task_cfg)
    for key in ('train_dataloader', 'test_dataloader', 'test_evaluator'):
        cfg[key] = task[key]
    cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=1)
    cfg.param_scheduler = None
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', interval=1, by_epoch=False)
    cfg.model.teacher = dict(config=teacher_cfg, checkpoint=teacher_ckpt)
    cfg.randomness = dict(seed=0)
    cfg.work_dir = str(tmp / 'work')
    return cfg


def _cls(tmp):
    data = make_cub(str(tmp / 'cub'), num_classes=3, per_class=2, size=32)
    task = cls_config(tmp / 'task.py', data, depth=18)
    teacher = cls_config(tmp / 'teacher.py', data, depth=34)
    ckpt = save_random_teacher(teacher, str(tmp / 'teacher.pth'))
    cfg = tiny_config(CLS, tmp, task, teacher, ckpt)
    cfg.model.probe_input_shape = (3, 32, 32)
    return cfg, None


def _det(tmp):
    pytest.importorskip('mmcv.ops', reason='mmdet needs mmcv with its ops')
    data = make_coco(str(tmp / 'coco'), num_train=2, num_val=1, size=64)
    task = det_config(tmp / 'task.py', data, depth=18)
    cfg = Config.fromfile(osp.join(CONFIGS, DET))
    # RetinaNet R-18 for both networks (the released R-50 and RX-101 need
    # ImageNet weights / are large); the MGD parts are the config's own.
    student = cfg.model.student
    student.backbone.update(depth=18, init_cfg=None)
    student.neck.in_channels = [64, 128, 256, 512]
    teacher_model = copy.deepcopy(student)
    teacher_model.neck.pop('init_cfg')
    teacher_model.bbox_head.pop('init_cfg')
    teacher = str(tmp / 'teacher.py')
    Config(dict(default_scope='mmdet', model=teacher_model)).dump(teacher)
    ckpt = save_random_teacher(teacher, str(tmp / 'teacher.pth'))
    student.neck.init_cfg.checkpoint = ckpt
    student.bbox_head.init_cfg.checkpoint = ckpt
    cfg = tiny_config(DET, tmp, task, teacher, ckpt)
    cfg.model.student = student
    cfg.model.probe_input_shape = (3, 64, 64)
    img = sorted(
        glob.glob(osp.join(data['data_root'], data['val_img_prefix'], '*')))[0]
    return cfg, ('mmdet.apis.init_detector', 'inference_detector', img)


def _seg(name, teacher_depth):

    def make(tmp):
        pytest.importorskip('mmcv.ops', reason='mmseg models need mmcv ops')
        data = make_cityscapes(
            str(tmp / 'cityscapes'), num_train=2, num_val=1, size=(96, 64))
        task = seg_config(tmp / 'task.py', data, depth=18)
        # depth 50: the 2048 channels of the released configs (1x1 align
        # 512 -> 2048); depth 34: 512 channels, no align
        teacher = seg_config(tmp / 'teacher.py', data, depth=teacher_depth)
        ckpt = save_random_teacher(teacher, str(tmp / 'teacher.pth'))
        cfg = tiny_config(name, tmp, task, teacher, ckpt)
        cfg.model.student.pretrained = None
        cfg.model.student.data_preprocessor.size = (64, 64)
        cfg.data_preprocessor.size = (64, 64)
        cfg.model.probe_input_shape = (3, 64, 64)
        img = sorted(
            glob.glob(
                osp.join(data['data_root'], 'leftImg8bit', 'val', '*',
                         '*.png')))[0]
        return cfg, ('mmseg.apis.init_model', 'inference_model', img)

    return make


@pytest.mark.slow
@pytest.mark.parametrize(
    'make',
    [_cls, _det, _seg(PSP, 50), _seg(DLV3, 34)],
    ids=['cls', 'det', 'pspnet', 'deeplabv3'])
def test_one_iteration_then_the_student_loads_without_mmkd(tmp_path, make):
    from mmengine.runner import Runner
    cfg, infer = make(tmp_path)
    cfg.experiment_name = f'mgd_{tmp_path.name}'
    cfg_path = str(tmp_path / 'mgd_tiny.py')
    cfg.dump(cfg_path)
    runner = Runner.from_cfg(Config.fromfile(cfg_path))
    snapshot = Snapshot()
    runner.register_hook(snapshot, priority='LOWEST')
    runner.train()
    model = runner.model

    logs = runner.message_hub.log_scalars
    assert torch.isfinite(
        torch.as_tensor(logs['train/distill.loss_mgd'].current()))
    # the student moved (backbone and MGD's generation), the teacher not
    after = model.student.state_dict()
    moved = [
        k for k, v in snapshot.student.items()
        if v.is_floating_point() and not torch.equal(v, after[k])
    ]
    assert any(k.startswith('backbone.') for k in moved)
    assert all(
        torch.equal(p, q)
        for p, q in zip(model.teacher.parameters(), snapshot.teacher))
    assert all(not p.requires_grad for p in model.teacher.parameters())
    if make is _det:  # init_student: neck and head began as the teacher's
        assert snapshot.init_from_teacher
        assert all(snapshot.init_from_teacher.values())

    ckpt = osp.join(cfg.work_dir, 'iter_1.pth')
    state = torch.load(ckpt, map_location='cpu', weights_only=False)
    assert any(
        k.startswith('connectors.mgd.levels.0.generation.')
        for k in state['state_dict'])
    if infer is not None:
        # RetinaNet's decoded boxes (pixels, through exp) differ by float
        # rounding between the two processes with two threads (2.7e-5 px)
        tol = (dict(rtol=1e-4, atol=1e-4)
               if infer[0].startswith('mmdet') else {})
        check_loads_without_mmkd(tmp_path, cfg_path, ckpt, *infer, **tol)
        return
    # classification: mmpretrain's init_model in a process without mmkd
    student_ckpt = str(tmp_path / 'student.pth')
    run(['tools/convert_to_student.py', cfg_path, ckpt, student_ckpt])
    inputs = torch.rand(2, 3, 32, 32) * 255
    torch.save(inputs, tmp_path / 'inputs.pth')
    run([
        '-c',
        textwrap.dedent(f"""
        import sys
        sys.modules['mmkd'] = None  # any import of mmkd fails
        import torch
        from mmpretrain.apis import init_model
        model = init_model({str(tmp_path / 'student.py')!r},
                           {student_ckpt!r}, device='cpu')
        inputs = torch.load({str(tmp_path / 'inputs.pth')!r})
        with torch.no_grad():
            data = model.data_preprocessor(dict(inputs=list(inputs)), False)
            out = model(data['inputs'], mode='tensor')
        torch.save(out, {str(tmp_path / 'plain_out.pth')!r})
    """)
    ])
    model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(dict(inputs=list(inputs)), False)
        ours = model(data['inputs'], mode='tensor')
    torch.testing.assert_close(ours, torch.load(tmp_path / 'plain_out.pth'))
