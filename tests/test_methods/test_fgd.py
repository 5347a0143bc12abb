"""FGD in a Distiller on real mmdet detectors: the wiring of taps,
connectors, ground truth and loss; what fails at build; the probe's
stand-in ground truth; the shipped configs (the authors' settings, one
training iteration on tiny COCO data, a converted student that mmdet loads
without mmkd)."""
import os
import os.path as osp
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmkd.models.losses import FGDLoss
from mmkd.models.utils import (build_task_model, get_ground_truth,
                               load_model_config, probe_ground_truth)
from mmkd.registry import MODELS

pytest.importorskip('mmcv.ops', reason='mmdet needs mmcv with its ops')

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CFG_DIR = osp.join(REPO, 'configs', 'fgd')
SIZE = 64


@pytest.fixture(autouse=True, scope='module')
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def retinanet_r18(width: int) -> dict:
    """mmdet's RetinaNet R-18 with an FPN of ``width`` channels, no
    pretrained backbone."""
    cfg = load_model_config('mmdet::retinanet/retinanet_r18_fpn_1x_coco.py')
    model = dict(cfg.model, _scope_='mmdet')
    model['backbone'] = dict(model['backbone'], init_cfg=None)
    model['neck'] = dict(model['neck'], out_channels=width)
    model['bbox_head'] = dict(
        model['bbox_head'], in_channels=width, feat_channels=width)
    return model


@pytest.fixture(scope='module')
def teacher_ckpt(tmp_path_factory):
    init_default_scope('mmdet')
    torch.manual_seed(1)
    teacher = build_task_model(retinanet_r18(32))
    path = str(tmp_path_factory.mktemp('fgd') / 'teacher.pth')
    torch.save({'state_dict': teacher.state_dict()}, path)
    return path


def fgd_distiller(teacher_ckpt,
                  s_levels=range(5),
                  t_levels=range(5),
                  student=None,
                  preds_S='fgd_s.feats',
                  **loss_kwargs):
    """RetinaNet R-18 (FPN 16 channels) <- RetinaNet R-18 (32 channels),
    FGD on the FPN convs of the given levels."""
    init_default_scope('mmdet')
    taps = {f's{i}': f'student.neck.fpn_convs.{i}.conv' for i in s_levels}
    taps.update(
        {f't{i}': f'teacher.neck.fpn_convs.{i}.conv'
         for i in t_levels})
    s = [f's{i}' for i in s_levels]
    t = [f't{i}' for i in t_levels]
    inputs = dict(
        preds_S=preds_S if preds_S != 'raw' else s,
        preds_T=t,
        rela_S='fgd_s.relation',
        rela_T='fgd_t.relation',
        gt_instances='gt_instances',
        img_metas='img_metas')
    torch.manual_seed(0)
    return MODELS.build(
        dict(
            type='Distiller',
            _scope_='mmkd',
            student=student or retinanet_r18(16),
            teacher=dict(model=retinanet_r18(32), checkpoint=teacher_ckpt),
            taps=taps,
            connectors=dict(
                fgd_s=dict(type='FGDConnector', inputs=s, targets=t),
                fgd_t=dict(type='FGDConnector', inputs=t)),
            losses=dict(
                loss_fgd=dict(type='FGDLoss', inputs=inputs, **loss_kwargs)),
            probe_input_shape=(3, SIZE, SIZE)))


def det_samples(shapes=((48, 64), (64, 56))):
    """Two images padded to 64 x 64; the second box touches the border."""
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    boxes = [
        torch.tensor([[4., 8., 36., 40.]]),
        torch.tensor([[0., 0., 16., 16.], [20., 24., 56., 64.]])
    ]
    samples = []
    for b, shape in zip(boxes, shapes):
        s = DetDataSample(
            metainfo=dict(
                img_shape=shape,
                ori_shape=shape,
                pad_shape=(64, 64),
                scale_factor=(1., 1.),
                batch_input_shape=(64, 64)))
        s.gt_instances = InstanceData(
            bboxes=b, labels=torch.zeros(len(b), dtype=torch.long))
        samples.append(s)
    return samples


def test_distiller_feeds_fgd_its_levels_boxes_and_metas(teacher_ckpt):
    model = fgd_distiller(
        teacher_ckpt,
        alpha_fgd=0.3,
        beta_fgd=0.2,
        gamma_fgd=0.1,
        lambda_fgd=0.05)
    conn_s, conn_t = model.connectors['fgd_s'], model.connectors['fgd_t']
    assert conn_s.in_channels == [16] * 5 and conn_s.out_channels == [32] * 5
    assert all(isinstance(a, torch.nn.Conv2d) for a in conn_s.align)
    assert conn_t.in_channels == [32] * 5 and conn_t.detach
    # the trainable parts are the distiller's: optimizer and checkpoint
    names = {n for n, _ in model.named_parameters()}
    assert any(n.startswith('connectors.fgd_s.align.0') for n in names)
    assert any(
        n.startswith('connectors.fgd_t.context.4.conv_mask') for n in names)
    assert not any(n.startswith('teacher') for n in model.state_dict())

    model.train()
    samples = det_samples()
    torch.manual_seed(3)
    inputs = torch.randn(2, 3, SIZE, SIZE)
    losses = model(inputs, samples, mode='loss')
    assert any(k.startswith('loss_cls') for k in losses)  # the student's

    # independent: the two necks' outputs (= their fpn_convs), the same
    # connectors, the boxes and metas of the samples
    with torch.no_grad():
        t_fpn = list(model.teacher.extract_feat(inputs))
    s_fpn = list(model.student.extract_feat(inputs))
    out_s = conn_s(s_fpn, out_sizes=[f.shape[-2:] for f in t_fpn])
    expected = FGDLoss(
        alpha_fgd=0.3, beta_fgd=0.2, gamma_fgd=0.1,
        lambda_fgd=0.05)(out_s['feats'], t_fpn, out_s['relation'],
                         conn_t(t_fpn)['relation'],
                         [s.gt_instances
                          for s in samples], [s.metainfo for s in samples])
    torch.testing.assert_close(losses['distill.loss_fgd'], expected)
    assert expected > 0

    model.zero_grad()
    losses['distill.loss_fgd'].backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert grads['student.neck.fpn_convs.0.conv.weight'].abs().max() > 0
    # at the start (zero last conv, as the authors) only the blocks' last
    # convs get a gradient
    for side in ('fgd_s', 'fgd_t'):
        block = f'connectors.{side}.context.0.'
        assert grads[block + 'channel_add_conv.3.weight'].abs().max() > 0
        assert grads[block + 'conv_mask.weight'].abs().max() == 0
    assert all(p.grad is None for p in model.teacher.parameters())


def test_probe_gives_fgd_valid_ground_truth(teacher_ckpt):
    model = fgd_distiller(teacher_ckpt)
    inputs = torch.zeros(2, 3, SIZE, SIZE)
    gt = {
        k: probe_ground_truth(k, inputs, model.student)
        for k in ('gt_instances', 'img_metas')
    }
    assert [len(g.bboxes) for g in gt['gt_instances']] == [1, 1]
    assert gt['img_metas'][0]['img_shape'] == (SIZE, SIZE)
    # what the distiller's build-time check runs: the probe's features,
    # the connectors, the stand-in ground truth
    values = dict(model.probe((3, SIZE, SIZE)), **gt)
    values.update(model.graph.run_connectors(values))
    name, mapping = model.graph._loss_plan[0]
    loss = model.distill_losses[name](**{
        a: model.graph.resolve(s, values)
        for a, s in mapping
    })
    assert torch.isfinite(loss)
    # a classifier's labels asked of a detector: refused, naming the fix
    with pytest.raises(ValueError, match='not an mmpretrain classifier'):
        probe_ground_truth('gt_label', inputs, model.student)


def test_no_boxes_in_the_data_samples_says_what_to_fix():
    from mmkd.testing.task_configs import cifar_classifier
    init_default_scope('mmpretrain')
    classifier = build_task_model(cifar_classifier(8))
    with pytest.raises(
            ValueError,
            match='not an mmdet detector.*'
            r'LoadAnnotations\(with_bbox=True\)'):
        probe_ground_truth('gt_instances', torch.zeros(2, 1, 16, 16),
                           classifier)
    from mmpretrain.structures import DataSample
    samples = [DataSample().set_gt_label(0) for _ in range(2)]
    with pytest.raises(KeyError, match='do not carry it.*LoadAnnotations'):
        get_ground_truth(samples, 'gt_instances')
    assert get_ground_truth(samples,
                            'img_metas') == [s.metainfo for s in samples]


def test_bad_wiring_fails_at_build(teacher_ckpt):
    with pytest.raises(ValueError, match='pairs the levels one to one'):
        fgd_distiller(teacher_ckpt, s_levels=range(4), t_levels=range(5))
    with pytest.raises(ValueError, match="connector 'fgd_s'.*same stride"):
        fgd_distiller(teacher_ckpt, s_levels=range(4), t_levels=range(1, 5))


def test_channels_without_align_say_what_to_fix(teacher_ckpt):
    # preds_S on the raw 16-channel student maps, not the aligned ones:
    # refused by the loss where it first runs with ground truth (the
    # build-time probe when it runs ground-truth losses, else the first
    # batch)
    with pytest.raises(ValueError, match="preds_S='fgd_s.feats'.*align"):
        model = fgd_distiller(teacher_ckpt, preds_S='raw').train()
        model(torch.randn(2, 3, SIZE, SIZE), det_samples(), mode='loss')


def test_fgd_on_a_classifier_says_the_samples_have_no_boxes(tmp_path):
    from mmpretrain.structures import DataSample

    from mmkd.testing.task_configs import cifar_classifier, save_cifar_teacher
    ckpt = save_cifar_teacher(str(tmp_path / 'teacher.pth'))
    init_default_scope('mmpretrain')
    with pytest.raises((ValueError, KeyError),
                       match=r'(not an mmdet detector|do not carry it).*'
                       'LoadAnnotations'):
        model = MODELS.build(
            dict(
                type='Distiller',
                _scope_='mmkd',
                student=cifar_classifier(4),
                teacher=dict(model=cifar_classifier(8), checkpoint=ckpt),
                taps=dict(s='student.backbone', t='teacher.backbone'),
                connectors=dict(
                    fgd_s=dict(type='FGDConnector', inputs='s', targets='t'),
                    fgd_t=dict(type='FGDConnector', inputs='t')),
                losses=dict(
                    loss_fgd=dict(
                        type='FGDLoss',
                        inputs=dict(
                            preds_S='fgd_s.feats',
                            preds_T='t',
                            rela_S='fgd_s.relation',
                            rela_T='fgd_t.relation',
                            gt_instances='gt_instances',
                            img_metas='img_metas'))),
                probe_input_shape=(1, 16, 16))).train()
        samples = [DataSample().set_gt_label(0) for _ in range(2)]
        model(torch.randn(2, 1, 16, 16), samples, mode='loss')


# --------------------------------------------------------------------------
# The shipped configs
# --------------------------------------------------------------------------
# config: (student parts from the teacher, levels, lr, temp, alpha, beta,
# gamma, lambda), the authors' fgd_*_r101_fpn_2x_distill_*_r50_* configs
CONFIGS = {
    'fgd_retinanet_r101-r50_fpn_2x_coco.py':
    (('neck', 'bbox_head'), 5, 0.01, 0.5, 0.001, 0.0005, 0.0005, 0.000005),
    'fgd_faster-rcnn_r101-r50_fpn_2x_coco.py':
    (('neck', 'rpn_head', 'roi_head'), 4, 0.02, 0.5, 0.00005, 0.000025,
     0.00005, 0.0000005),
}


@pytest.mark.parametrize('name', list(CONFIGS))
def test_configs_have_the_authors_settings(name):
    parts, levels, lr, temp, alpha, beta, gamma, lam = CONFIGS[name]
    cfg = Config.fromfile(osp.join(CFG_DIR, name))
    assert len(open(osp.join(CFG_DIR, name)).read().splitlines()) <= 30
    loss = cfg.model.losses.loss_fgd
    assert (loss.temp, loss.alpha_fgd, loss.beta_fgd, loss.gamma_fgd,
            loss.lambda_fgd) == (temp, alpha, beta, gamma, lam)
    assert sorted(cfg.model.taps) == sorted([f's{i}' for i in range(levels)] +
                                            [f't{i}' for i in range(levels)])
    assert cfg.model.taps[f's{levels - 1}'] == (
        f'student.neck.fpn_convs.{levels - 1}.conv')
    for part in parts:  # init_student=True: neck and heads from the teacher
        assert cfg.model.student[part].init_cfg == dict(
            type='Pretrained',
            checkpoint=cfg.model.teacher.checkpoint,
            prefix=part + '.')
    assert cfg.model.student.backbone.depth == 50
    assert load_model_config(cfg.model.teacher.config).model.backbone.depth \
        == 101
    assert cfg.optim_wrapper.optimizer.lr == lr
    assert cfg.optim_wrapper.clip_grad == dict(max_norm=35, norm_type=2)
    assert cfg.train_cfg.max_epochs == 24


TINY = '''
_base_ = [{base!r}]
model = dict(
    student=dict(backbone=dict(init_cfg=None), {parts}),
    teacher=dict(checkpoint={ckpt!r}))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(64, 48), keep_ratio=False),
    dict(type='PackDetInputs')
]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        data_root={data_root!r}, ann_file={ann!r},
        data_prefix=dict(img={img!r}),
        metainfo=dict(classes={classes!r}), pipeline=train_pipeline))
train_cfg = dict(max_epochs=1, val_interval=10)
val_dataloader = val_evaluator = val_cfg = None  # the test pipeline stays
default_hooks = dict(logger=dict(interval=1))
'''


@pytest.mark.slow
@pytest.mark.parametrize('name', list(CONFIGS))
def test_config_trains_one_iteration_and_converts(name, tmp_path):
    """One iteration of the config (its models, connectors, loss,
    optimizer) on tiny COCO data: the student starts from the teacher's
    neck and heads and changes, the teacher does not, the context blocks
    train and are saved, and the converted student loads in mmdet without
    mmkd."""
    from mmengine.hooks import Hook
    from mmengine.runner import Runner

    from mmkd.testing import make_coco
    parts = CONFIGS[name][0]
    cfg_path = osp.join(CFG_DIR, name)
    teacher_cfg = Config.fromfile(cfg_path).model.teacher.config
    init_default_scope('mmdet')
    torch.manual_seed(0)
    teacher = build_task_model(
        dict(load_model_config(teacher_cfg).model, _scope_='mmdet'))
    ckpt = str(tmp_path / 'teacher.pth')
    torch.save({'state_dict': teacher.state_dict()}, ckpt)
    coco = make_coco(
        str(tmp_path / 'coco'),
        num_train=2,
        num_val=1,
        size=64,
        with_masks=False)
    init = ', '.join(f'{p}=dict(init_cfg=dict(checkpoint={ckpt!r}))'
                     for p in parts)
    tiny = tmp_path / 'tiny.py'
    tiny.write_text(
        TINY.format(
            base=cfg_path,
            parts=init,
            ckpt=ckpt,
            data_root=coco['data_root'],
            ann=coco['train_ann_file'],
            img=coco['train_img_prefix'],
            classes=coco['classes']))

    class Snapshot(Hook):

        def before_train(self, runner):
            self.before = {
                k: v.clone()
                for k, v in runner.model.state_dict().items()
            }

    cfg = Config.fromfile(str(tiny))
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    snapshot = Snapshot()
    runner.register_hook(snapshot)
    runner.train()
    assert runner.iter == 1
    model = runner.model
    before, after = snapshot.before, model.state_dict()
    teacher_state = teacher.state_dict()
    for part in parts:  # initialised from the teacher, then trained
        keys = [k for k in teacher_state if k.startswith(part + '.')]
        assert keys and all(
            torch.equal(before['student.' + k], teacher_state[k])
            for k in keys)
        assert any(not torch.equal(after['student.' + k], teacher_state[k])
                   for k in keys if teacher_state[k].is_floating_point())
    for k, v in model.teacher.state_dict().items():
        assert torch.equal(v, teacher_state[k]), k
    for side in ('fgd_s', 'fgd_t'):  # trained and in the checkpoint
        keys = [k for k in after if k.startswith(f'connectors.{side}.')]
        assert keys and any(not torch.equal(before[k], after[k]) for k in keys)
    saved = torch.load(
        osp.join(cfg.work_dir, 'epoch_1.pth'),
        map_location='cpu',
        weights_only=False)['state_dict']
    assert any(k.startswith('connectors.fgd_t.context') for k in saved)
    assert not any(k.startswith('teacher') for k in saved)

    sys.path.insert(0, osp.join(REPO, 'tests', 'test_tools'))
    from test_train_distill import check_loads_without_mmkd
    img_dir = osp.join(coco['data_root'], coco['train_img_prefix'])
    img = osp.join(img_dir, sorted(os.listdir(img_dir))[0])
    ours = check_loads_without_mmkd(tmp_path, str(tiny),
                                    osp.join(cfg.work_dir, 'epoch_1.pth'),
                                    'mmdet.apis.init_detector',
                                    'inference_detector', img)
    assert len(ours['feats']) == 5
