"""ReviewKD as configs of the generic Distiller (configs/reviewkd)."""
import json
import os
import os.path as osp
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import init_default_scope
from mmpretrain.structures import DataSample

from mmkd.models.distillers.feature_tap import FeatureTap, TapRecorder
from mmkd.models.utils import build_task_model, load_model_config
from mmkd.registry import MODELS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CFG_DIR = osp.join(REPO, 'configs', 'reviewkd')


@pytest.fixture(autouse=True, scope='module')
def _one_thread():
    """Tiny models: one intra-op thread is faster (much faster when the
    shared cores are busy)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _cfg(name: str) -> Config:
    return Config.fromfile(osp.join(CFG_DIR, name))


def _random_teacher_ckpt(teacher_config, path: str, scope: str) -> str:
    """Save a randomly initialised teacher built from its config."""
    if not osp.exists(path):
        cfg = load_model_config(teacher_config)
        teacher = build_task_model(dict(cfg.model, _scope_=scope))
        torch.save({'state_dict': teacher.state_dict()}, path)
    return path


# --------------------------------------------------------------------------
# Independent re-computation of the features the configs tap
# --------------------------------------------------------------------------
def _pool(x):
    return x.mean(dim=(2, 3), keepdim=True)


def _resnet_student(bb, x):
    """CIFARResNet: post-ReLU stage outputs."""
    x = F.relu(bb.bn1(bb.conv1(x)))
    feats = []
    for k in (1, 2, 3):
        x = getattr(bb, f'layer{k}')(x)
        feats.append(x)
    return feats + [_pool(x)]


def _resnet_teacher(bb, x):
    """CIFARResNet: residual sum of each stage's last block, before ReLU."""
    x = F.relu(bb.bn1(bb.conv1(x)))
    feats = []
    for k in (1, 2, 3):
        layer = getattr(bb, f'layer{k}')
        for block in layer[:-1]:
            x = block(x)
        b = layer[-1]
        branch = b.bn2(b.conv2(F.relu(b.bn1(b.conv1(x)))))
        shortcut = x if b.downsample is None else b.downsample(x)
        pre = branch + shortcut
        feats.append(pre)
        x = F.relu(pre)
    return feats + [_pool(x)]


def _wrn_student(bb, x):
    """WideResNet: raw stage outputs; pooled relu(bn1(stage 3))."""
    x = bb.conv1(x)
    feats = []
    for k in (1, 2, 3):
        x = getattr(bb, f'block{k}')(x)
        feats.append(x)
    return feats + [_pool(F.relu(bb.bn1(x)))]


def _wrn_teacher(bb, x):
    """WideResNet: each stage output through the next BN, no ReLU."""
    f1 = bb.block1(bb.conv1(x))
    f2 = bb.block2(f1)
    f3 = bb.block3(f2)
    return [
        bb.block2.layer[0].bn1(f1), bb.block3.layer[0].bn1(f2),
        bb.bn1(f3),
        _pool(F.relu(bb.bn1(f3)))
    ]


def _shufflev2_student(bb, x):
    x = F.relu(bb.bn1(bb.conv1(x)))
    feats = []
    for k in (1, 2, 3):
        x = getattr(bb, f'layer{k}')(x)
        feats.append(x)
    return feats + [_pool(F.relu(bb.bn2(bb.conv2(x))))]


def _block_pool(x, size):
    """Average pooling to (size, size) by reshaping (sides divisible)."""
    n, c, h, w = x.shape
    return x.reshape(n, c, size, h // size, size, w // size).mean((3, 5))


def _hcl(preds_s, preds_t):
    """HCL as docs/en/methods.md#reviewkd-hcl (sum over stages)."""
    total = 0.
    for fs, ft in zip(preds_s, preds_t):
        h = fs.shape[2]
        weights = [1.0]
        terms = [((fs - ft)**2).mean()]
        for size in (4, 2, 1):
            if size < h:
                weights.append(weights[-1] / 2)
                terms.append(((_block_pool(fs, size) -
                               _block_pool(ft, size))**2).mean())
        total = total + sum(w * t
                            for w, t in zip(weights, terms)) / sum(weights)
    return total


CIFAR_PAIRS = {
    # config: (student features, teacher features, weight)
    'reviewkd_resnet56-resnet20_1xb128-240e_cifar100.py':
    (_resnet_student, _resnet_teacher, 0.6),
    'reviewkd_wrn-40-2-wrn-16-2_1xb128-240e_cifar100.py':
    (_wrn_student, _wrn_teacher, 5.0),
    'reviewkd_resnet32x4-shufflenet-v2_1xb128-240e_cifar100.py':
    (_shufflev2_student, _resnet_teacher, 8.0),
}


@pytest.fixture(scope='module')
def ckpt_dir(tmp_path_factory):
    return tmp_path_factory.mktemp('teachers')


def _build_cifar(name, ckpt_dir):
    cfg = _cfg(name)
    init_default_scope('mmpretrain')
    teacher_cfg = cfg.model.teacher.config
    cfg.model.teacher.checkpoint = _random_teacher_ckpt(
        teacher_cfg, str(ckpt_dir / (osp.basename(teacher_cfg) + '.pth')),
        'mmpretrain')
    return cfg, MODELS.build(cfg.model)


def _cifar_batch(model, n=4, size=16):
    torch.manual_seed(0)
    data = dict(
        inputs=[
            torch.randint(0, 256, (3, size, size)).float() for _ in range(n)
        ],
        data_samples=[
            DataSample().set_gt_label(i * 7 % 100) for i in range(n)
        ])
    return model.data_preprocessor(data, True)


@pytest.mark.parametrize('name', list(CIFAR_PAIRS))
def test_cifar_loss_is_ce_plus_weighted_hcl(name, ckpt_dir):
    student_feats, teacher_feats, weight = CIFAR_PAIRS[name]
    cfg, model = _build_cifar(name, ckpt_dir)
    assert cfg.model.losses.loss_hcl.loss_weight == weight
    assert [h.type for h in cfg.custom_hooks] == [
        'mmkd.DistillLossWarmupHook'
    ] and cfg.custom_hooks[0].warmup == 20
    model.train()
    data = _cifar_batch(model)
    losses = model(**data, mode='loss')
    assert set(losses) == {'student.loss', 'distill.loss_hcl'}

    x = data['inputs']
    labels = torch.tensor([s.gt_label.item() for s in data['data_samples']])
    with torch.no_grad():
        t_feats = teacher_feats(model.teacher.backbone, x)
    s_feats = student_feats(model.student.backbone, x)
    logits = model.student.head.fc(s_feats[-1].flatten(1))
    review = model.connectors['review'](
        s_feats, out_sizes=[tuple(t.shape[-2:]) for t in t_feats])
    for r, t in zip(review, t_feats):
        assert r.shape == t.shape
    if 'shufflenet' in name:  # half-size student maps, resized up
        assert [f.shape[-1] for f in s_feats] == [8, 4, 2, 1]
        assert [f.shape[-1] for f in t_feats] == [16, 8, 4, 1]
    expected_hcl = weight * _hcl(review, t_feats)
    expected_ce = F.cross_entropy(logits, labels)
    torch.testing.assert_close(losses['distill.loss_hcl'], expected_hcl)
    torch.testing.assert_close(losses['student.loss'], expected_ce)

    # Distillation gradients reach every conv of the student's backbone and
    # every ABF, not the classifier (after the pooled feature), never the
    # teacher.
    model.zero_grad()
    losses['distill.loss_hcl'].backward()
    convs = [
        m for m in model.student.backbone.modules()
        if isinstance(m, torch.nn.Conv2d)
    ]
    assert all(m.weight.grad.abs().sum() > 0 for m in convs)
    for abf in model.connectors['review'].abfs:
        assert abf.conv1[0].weight.grad.abs().sum() > 0
        assert abf.conv2[0].weight.grad.abs().sum() > 0
    assert model.student.head.fc.weight.grad is None
    assert all(p.grad is None and not p.requires_grad
               for p in model.teacher.parameters())


# --------------------------------------------------------------------------
# Pre-activation taps of mmpretrain's ResNet
# --------------------------------------------------------------------------
@pytest.mark.parametrize('depth, relu_calls', [(18, 2), (50, 3)])
def test_mmpretrain_resnet_preact_taps(depth, relu_calls):
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    net = MODELS.build(
        dict(
            type='ResNet',
            depth=depth,
            stem_channels=8,
            base_channels=8,
            _scope_='mmpretrain'))
    net.eval()  # (mmpretrain's ResNet.train() returns None)
    last = [len(getattr(net, f'layer{k}')) - 1 for k in (1, 2, 3, 4)]
    # The config form: the input of the last block's (in-place) ReLU on its
    # last call; `call` is 0-based.
    taps = [
        FeatureTap.from_cfg(
            f'pre{k}',
            dict(
                path=f'teacher.layer{k}.{last[k - 1]}.relu',
                io='input',
                call=relu_calls - 1)) for k in (1, 2, 3, 4)
    ]
    taps += [FeatureTap(f'post{k}', f'teacher.layer{k}') for k in (1, 2, 3, 4)]
    recorder = TapRecorder(net, taps)
    x = torch.randn(2, 3, 32, 32)
    recorder.start()
    with torch.no_grad():
        net(x)
    recorder.stop()
    values = {t.name: t.get() for t in taps}
    assert all(len(t.calls) == relu_calls for t in taps[:4])

    with torch.no_grad():
        h = net.maxpool(net.relu(net.norm1(net.conv1(x))))
        for k in (1, 2, 3, 4):
            blocks = list(getattr(net, f'layer{k}'))
            for block in blocks[:-1]:
                h = block(h)
            b = blocks[-1]
            out = F.relu(b.norm1(b.conv1(h)))
            if relu_calls == 3:
                out = F.relu(b.norm2(b.conv2(out)))
                out = b.norm3(b.conv3(out))
            else:
                out = b.norm2(b.conv2(out))
            pre = out + (h if b.downsample is None else b.downsample(h))
            h = F.relu(pre)
            tap = values[f'pre{k}']
            torch.testing.assert_close(tap, pre)
            assert (tap < 0).any()
            torch.testing.assert_close(F.relu(tap), values[f'post{k}'])


# --------------------------------------------------------------------------
# The warm-up hook on a real Runner
# --------------------------------------------------------------------------
class _ScaleRecorder(Hook):
    """Records, for every iteration, the epoch, the scale the warm-up hook
    set, and the logged distillation loss relative to the student's CE."""

    priority = 'LOW'  # after DistillLossWarmupHook (NORMAL)

    def __init__(self):
        self.seen = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self._scale = runner.model.loss_scales.get('loss_ce')

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None):
        ratio = (outputs['distill.loss_ce'] / outputs['student.loss']).item()
        self.seen.append((runner.epoch, runner.iter, self._scale, ratio))


def _tiny_runner(tmp_path, fmnist, train_cfg, hook_cfg):
    from mmengine.runner import Runner
    recorder = _ScaleRecorder()
    model = dict(
        type='Distiller',
        _scope_='mmkd',
        student=dict(
            type='ImageClassifier',
            _scope_='mmpretrain',
            backbone=dict(
                type='mmkd.CIFARResNet',
                arch=dict(depth=8, stem_channels=4, base_channels=4),
                in_channels=1),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(
                type='LinearClsHead',
                num_classes=10,
                in_channels=16,
                loss=dict(type='CrossEntropyLoss')),
            data_preprocessor=dict(
                type='ClsDataPreprocessor', mean=[0.], std=[255.])),
        # The same logits through the distiller's GT cross-entropy: the
        # logged distillation loss is exactly scale * the student's CE.
        taps=dict(s_logits='student.head.fc'),
        losses=dict(
            loss_ce=dict(
                type='GTCrossEntropyLoss',
                inputs=dict(logits='s_logits', gt='gt_label'))),
        probe_input_shape=(1, 28, 28))
    runner = Runner(
        model=model,
        work_dir=str(tmp_path / 'work'),
        train_dataloader=dict(
            batch_size=10,
            num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=False),
            dataset=dict(
                type='mmpretrain.FashionMNIST',
                data_root=fmnist['data_root'],
                test_mode=False,
                download=False,
                pipeline=[dict(type='mmpretrain.PackInputs')])),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=train_cfg,
        custom_hooks=[hook_cfg, recorder],
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=100),
            logger=dict(type='LoggerHook', interval=1)),
        default_scope='mmpretrain')
    return runner, recorder


@pytest.fixture(scope='module')
def fmnist(tmp_path_factory):
    from mmkd.testing.data import make_fashion_mnist
    return make_fashion_mnist(
        str(tmp_path_factory.mktemp('fmnist')), n_train=20, n_test=10)


def test_warmup_hook_epochs_on_a_real_runner(tmp_path, fmnist):
    runner, recorder = _tiny_runner(
        tmp_path, fmnist, dict(by_epoch=True, max_epochs=4),
        dict(type='mmkd.DistillLossWarmupHook', warmup=2))
    runner.train()
    # The authors: weight = min(1, epoch / warm_up) for epoch in
    # range(epochs), 0-based; 20 images / batch 10 = 2 iterations per epoch.
    expected = [min(1., e / 2) for e in range(4) for _ in range(2)]
    assert [s[0] for s in recorder.seen] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert [s[2] for s in recorder.seen] == expected
    torch.testing.assert_close([s[3] for s in recorder.seen],
                               expected,
                               rtol=1e-4,
                               atol=1e-6)


def test_warmup_hook_by_iteration_and_loop_check(tmp_path, fmnist):
    runner, recorder = _tiny_runner(
        tmp_path, fmnist, dict(by_epoch=False, max_iters=4),
        dict(type='mmkd.DistillLossWarmupHook', warmup=2, by_epoch=False))
    runner.train()
    assert [s[2] for s in recorder.seen] == [0., 0.5, 1., 1.]

    # by_epoch=True under an iteration-based loop would stay at 0 for ever.
    runner, _ = _tiny_runner(tmp_path, fmnist,
                             dict(by_epoch=False, max_iters=2),
                             dict(type='mmkd.DistillLossWarmupHook', warmup=2))
    with pytest.raises(ValueError, match='by_epoch=False'):
        runner.train()


# --------------------------------------------------------------------------
# Detection configs (mmdet)
# --------------------------------------------------------------------------
DET_CONFIGS = {
    # config: (weight, student depth, teacher neck start level)
    'reviewkd_faster-rcnn_r101-r50_fpn_1x_coco.py': (1.0, 50, 0),
    'reviewkd_faster-rcnn_r101-r18_fpn_1x_coco.py': (1.2, 18, 0),
    'reviewkd_retinanet_r101-r50_fpn_1x_coco.py': (1.0, 50, 1),
    'reviewkd_mask-rcnn_r101-r50_fpn_1x_coco.py': (0.8, 50, 0),
}


@pytest.mark.parametrize('name', list(DET_CONFIGS))
def test_detection_configs_build(name, ckpt_dir):
    pytest.importorskip('mmcv.ops')
    weight, depth, start = DET_CONFIGS[name]
    cfg = _cfg(name)
    init_default_scope('mmdet')
    teacher_cfg = cfg.model.teacher.config
    cfg.model.teacher.checkpoint = _random_teacher_ckpt(
        teacher_cfg, str(ckpt_dir / (teacher_cfg.split('/')[-1] + '.pth')),
        'mmdet')
    model = MODELS.build(cfg.model)
    assert model.student.backbone.depth == depth
    assert model.teacher.backbone.depth == 101
    review = model.connectors['review']
    assert review.in_channels == [256] * 5
    assert review.out_channels == [256] * 5 and review.mid_channels == 256
    assert model.distill_losses['loss_hcl'].loss_weight == weight
    assert model.teacher.neck.start_level == start
    assert 'custom_hooks' not in cfg  # no warm-up on detection

    # One step on a 2-image batch of 128 x 96 (non-square) images: the
    # review path handles each FPN level's own size.
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    samples = []
    for i in range(2):
        s = DetDataSample(
            metainfo=dict(
                img_shape=(96, 128),
                ori_shape=(96, 128),
                pad_shape=(96, 128),
                scale_factor=(1., 1.),
                batch_input_shape=(96, 128)))
        s.gt_instances = InstanceData(
            bboxes=torch.tensor([[10., 10., 60., 50.]]),
            labels=torch.tensor([i]))
        if 'mask' in name:
            from mmdet.structures.mask import BitmapMasks
            mask = torch.zeros(1, 96, 128, dtype=torch.uint8)
            mask[:, 10:50, 10:60] = 1
            s.gt_instances.masks = BitmapMasks(mask.numpy(), 96, 128)
        samples.append(s)
    model.train()
    losses = model(torch.randn(2, 3, 96, 128), samples, mode='loss')
    assert losses['distill.loss_hcl'] > 0
    assert any(k.startswith('loss_cls') or k == 'loss_rpn_cls' for k in losses)


_PROBE_HOOK = '''
import json
import os.path as osp
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class TeacherProbeHook(Hook):
    """Counts calls of the teacher's neck and rpn_head."""

    def before_train(self, runner):
        self.neck, self.rpn = [], []
        teacher = runner.model.teacher
        # a pre-hook: the distiller stops the teacher in the neck's
        # forward hook, before later forward hooks would run
        teacher.neck.register_forward_pre_hook(
            lambda *a: self.neck.append(1))
        teacher.rpn_head.register_forward_pre_hook(
            lambda *a: self.rpn.append(1))

    def after_train(self, runner):
        with open(osp.join(runner.work_dir, 'teacher_calls.json'), 'w') as f:
            json.dump(dict(neck=len(self.neck), rpn_head=len(self.rpn),
                           iters=runner.iter), f)
'''


def test_faster_rcnn_reviewkd_trains_with_tools_train(tmp_path, ckpt_dir):
    pytest.importorskip('mmcv.ops')
    from mmkd.testing.data import make_coco
    coco = make_coco(
        str(tmp_path / 'coco'),
        num_train=4,
        num_val=1,
        size=128,
        with_masks=False)
    base = osp.join(CFG_DIR, 'reviewkd_faster-rcnn_r101-r18_fpn_1x_coco.py')
    ckpt = _random_teacher_ckpt(
        'mmdet::faster_rcnn/faster-rcnn_r101_fpn_1x_coco.py',
        str(ckpt_dir / 'faster-rcnn_r101_fpn_1x_coco.py.pth'), 'mmdet')
    (tmp_path / 'rkd_probe_hook.py').write_text(_PROBE_HOOK)
    (tmp_path / 'tiny.py').write_text(
        textwrap.dedent(f'''
        _base_ = [{base!r}]
        custom_imports = dict(imports=['mmkd', 'rkd_probe_hook'],
                              allow_failed_imports=False)
        model = dict(
            student=dict(backbone=dict(init_cfg=None)),
            teacher=dict(checkpoint={ckpt!r}))
        train_pipeline = [
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', with_bbox=True),
            dict(type='Resize', scale=(128, 128), keep_ratio=True),
            dict(type='PackDetInputs')
        ]
        train_dataloader = dict(
            batch_size=2, num_workers=0, persistent_workers=False,
            sampler=dict(type='DefaultSampler', shuffle=False),
            dataset=dict(
                data_root={coco['data_root']!r},
                ann_file={coco['train_ann_file']!r},
                data_prefix=dict(img={coco['train_img_prefix']!r}),
                metainfo=dict(classes={coco['classes']!r}),
                pipeline=train_pipeline))
        train_cfg = dict(max_epochs=1, val_interval=10)
        val_dataloader = None
        val_evaluator = None
        val_cfg = None
        test_dataloader = None
        test_evaluator = None
        test_cfg = None
        default_hooks = dict(logger=dict(interval=1))
        custom_hooks = [dict(type='TeacherProbeHook')]
        '''))
    work_dir = tmp_path / 'work'
    env = dict(
        os.environ,
        PYTHONPATH=f'{tmp_path}{os.pathsep}{REPO}',
        OMP_NUM_THREADS='1')
    proc = subprocess.run([
        sys.executable,
        osp.join(REPO, 'tools', 'train.py'),
        str(tmp_path / 'tiny.py'), '--work-dir',
        str(work_dir)
    ],
                          cwd=REPO,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    calls = json.loads((work_dir / 'teacher_calls.json').read_text())
    assert calls == dict(neck=2, rpn_head=0, iters=2)
    scalars = [
        json.loads(line)
        for line in open(next(work_dir.glob('*/vis_data/scalars.json')))
    ]
    hcl = [s['distill.loss_hcl'] for s in scalars if 'distill.loss_hcl' in s]
    assert len(hcl) == 2 and all(v > 0 for v in hcl)
    assert all('loss_rpn_cls' in s for s in scalars if 'loss' in s)
    ckpt_keys = torch.load(
        work_dir / 'epoch_1.pth', map_location='cpu',
        weights_only=False)['state_dict']
    assert any(k.startswith('connectors.review.abfs.4') for k in ckpt_keys)
    assert not any(k.startswith('teacher') for k in ckpt_keys)
