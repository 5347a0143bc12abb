"""Distillation through tools/train.py, drop-in over tiny task configs of the
three libraries, on data in the real on-disk formats (CUB, COCO, Cityscapes).

Covers: the drop-in config (< 25 lines) over an unmodified task config,
training and validation with the library's own evaluator, the teacher's
checkpoint untouched and absent from the distiller's checkpoints, resume
under torch's weights_only loading, conversion to a student checkpoint that
the task library loads without mmkd (same predictions), and a 2-process gloo
run of tools/train.sh.
"""
import glob
import hashlib
import json
import os
import os.path as osp
import subprocess
import sys
import textwrap

import pytest
import torch

from mmkd.testing import make_cityscapes, make_coco, make_cub
from mmkd.testing.task_configs import (cls_config, det_config, seg_config,
                                       write)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def run(args, timeout=600, env=None):
    proc = subprocess.run(
        [sys.executable] + args,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ, PYTHONWARNINGS='ignore', **(env or {})))
    if proc.returncode != 0:
        raise AssertionError(f'{args} failed:\n{proc.stdout[-3000:]}\n'
                             f'{proc.stderr[-5000:]}')
    return proc.stdout + proc.stderr


def sha256(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def save_random_teacher(task_cfg: str, out: str) -> str:
    """A teacher checkpoint (random weights stand in for trained ones)."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from mmkd.models.utils import build_task_model
    cfg = Config.fromfile(task_cfg)
    init_default_scope(cfg.default_scope)
    torch.manual_seed(0)
    model = build_task_model(cfg.model)
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, out)
    return out


def distill_config(path, task_cfg, teacher_cfg, teacher_ckpt, body) -> str:
    """The user's drop-in file: inherits the task config unchanged."""
    text = f"""
        _base_ = [{task_cfg!r}]
        custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
        model = dict(
            _delete_=True,
            _scope_='mmkd',
            type='Distiller',
            student=_base_.model,
            teacher=dict(config={teacher_cfg!r}, checkpoint={teacher_ckpt!r}),
    """
    text = textwrap.dedent(text) + textwrap.indent(
        textwrap.dedent(body), '    ') + ')\n'
    assert len(text.strip().splitlines()) <= 25
    return write(path, text)


def last_scalars(work_dir):
    logs = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    assert logs, f'no scalars.json under {work_dir}'
    with open(sorted(logs)[-1]) as f:
        return [json.loads(line) for line in f]


# Run in both processes (the same code): what a user of the task library
# computes with a loaded model. `extract_feat` checks every backbone/neck
# weight, the task API's inference the rest of the model.
STUDENT_OUTPUTS = textwrap.dedent("""
    import mmcv
    import torch

    def student_outputs(model, img_path, infer):
        img = torch.from_numpy(mmcv.imread(img_path)).permute(2, 0, 1)
        with torch.no_grad():
            data = model.data_preprocessor(dict(inputs=[img.float()]), False)
            feats = model.extract_feat(data['inputs'])
            result = infer(model, img_path)
        out = dict(feats=[f for f in feats])
        if hasattr(result, 'pred_instances'):
            p = result.pred_instances
            out.update(bboxes=p.bboxes, scores=p.scores, labels=p.labels)
        else:
            out.update(seg_logits=result.seg_logits.data)
        return out
""")


def check_loads_without_mmkd(tmp, cfg, ckpt, init, infer, img_path,
                             rtol=None, atol=None):
    """Convert ``ckpt``, load the student with the task library's own
    ``init`` in a process where mmkd cannot be imported, and compare its
    outputs with the distiller's student on a real image (``rtol``/``atol``:
    ``torch.testing.assert_close``'s, default: its float32 ones)."""
    student_ckpt = str(tmp / 'student.pth')
    student_cfg = str(tmp / 'student.py')
    run(['tools/convert_to_student.py', cfg, ckpt, student_ckpt])
    converted = torch.load(student_ckpt, map_location='cpu',
                           weights_only=True)
    assert all(not k.startswith(('student.', 'teacher.', 'connectors.'))
               for k in converted['state_dict'])
    assert 'mmkd' not in open(student_cfg).read()
    lib = init.split('.')[0]
    out_file = str(tmp / 'plain_outputs.pth')
    script = STUDENT_OUTPUTS + textwrap.dedent(f"""
        import sys
        sys.modules['mmkd'] = None  # any import of mmkd fails
        from {lib}.apis import {init.split('.')[-1]} as init, {infer} as infer
        model = init({student_cfg!r}, {student_ckpt!r}, device='cpu')
        torch.save(student_outputs(model, {img_path!r}, infer), {out_file!r})
    """)
    run(['-c', script])
    plain = torch.load(out_file)

    import importlib

    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint

    from mmkd.registry import MODELS
    dcfg = Config.fromfile(cfg)
    init_default_scope(lib)
    distiller = MODELS.build(
        dict(dcfg.model, data_preprocessor=dcfg.get('data_preprocessor'))
        if dcfg.get('data_preprocessor') else dcfg.model).eval()
    load_checkpoint(distiller, ckpt)
    distiller.student.cfg = Config.fromfile(student_cfg)
    distiller.student.dataset_meta = converted['meta'].get('dataset_meta')
    namespace = {}
    exec(STUDENT_OUTPUTS, namespace)
    ours = namespace['student_outputs'](
        distiller.student, img_path,
        getattr(importlib.import_module(f'{lib}.apis'), infer))
    assert set(ours) == set(plain)
    torch.testing.assert_close(ours, plain, rtol=rtol, atol=atol)
    return ours


@pytest.fixture(scope='module')
def cls_setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('cls')
    data = make_cub(str(tmp / 'cub'), num_classes=3, per_class=8, size=40)
    student_cfg = cls_config(tmp / 'student.py', data, depth=18)
    teacher_cfg = cls_config(tmp / 'teacher.py', data, depth=34)
    teacher_ckpt = save_random_teacher(teacher_cfg, str(tmp / 'teacher.pth'))
    cfg = distill_config(
        tmp / 'kd.py', student_cfg, teacher_cfg, teacher_ckpt, """
        taps=dict(s='student.head.fc', t='teacher.head.fc'),
        losses=dict(loss_kd=dict(type='KDLoss', tau=4.0,
                                 inputs=dict(preds_S='s', preds_T='t'))),
        probe_input_shape=(3, 32, 32)""")
    return dict(tmp=tmp, cfg=cfg, student_cfg=student_cfg,
                teacher_ckpt=teacher_ckpt)


def test_cls_train_resume_convert(cls_setup):
    tmp, cfg = cls_setup['tmp'], cls_setup['cfg']
    work_dir = str(tmp / 'work')
    teacher_hash = sha256(cls_setup['teacher_ckpt'])
    out = run(['tools/train.py', cfg, '--work-dir', work_dir])
    assert 'distill.loss_kd' in out

    scalars = last_scalars(work_dir)
    assert any('distill.loss_kd' in s for s in scalars)
    assert any('accuracy/top1' in s for s in scalars)  # mmpretrain evaluator
    ckpt_path = osp.join(work_dir, 'epoch_1.pth')
    state = torch.load(ckpt_path, map_location='cpu',
                       weights_only=False)['state_dict']
    assert any(k.startswith('student.') for k in state)
    assert not any(k.startswith('teacher') for k in state)
    assert sha256(cls_setup['teacher_ckpt']) == teacher_hash

    # Resume (torch>=2.6 loads with weights_only=True) and train one more
    # epoch from where the first run stopped.
    out = run(['tools/train.py', cfg, '--work-dir', work_dir, '--resume',
               '--cfg-options', 'train_cfg.max_epochs=2'])
    assert 'resumed epoch: 1' in out.replace('resumed epoch:  1',
                                             'resumed epoch: 1') or \
        'Auto resumed from the latest checkpoint' in out
    assert osp.isfile(osp.join(work_dir, 'epoch_2.pth'))

    # Convert, then load in mmpretrain in a process where mmkd cannot be
    # imported, and compare predictions with the distiller's student.
    student_ckpt = str(tmp / 'student.pth')
    run(['tools/convert_to_student.py', cfg,
         osp.join(work_dir, 'epoch_2.pth'), student_ckpt])
    converted = torch.load(student_ckpt, map_location='cpu',
                           weights_only=True)
    assert not any('mmkd' in str(k) for k in converted['state_dict'])
    assert all(not k.startswith(('student.', 'teacher.', 'connectors.',
                                 'distill_losses.'))
               for k in converted['state_dict'])
    inputs = torch.rand(2, 3, 32, 32) * 255
    torch.save(inputs, tmp / 'inputs.pth')
    script = textwrap.dedent(f"""
        import sys
        sys.modules['mmkd'] = None  # any import of mmkd fails
        import torch
        from mmpretrain.apis import init_model
        model = init_model({str(tmp / 'student.py')!r}, {student_ckpt!r},
                           device='cpu')
        inputs = torch.load({str(tmp / 'inputs.pth')!r})
        with torch.no_grad():
            data = model.data_preprocessor(dict(inputs=list(inputs)), False)
            out = model(data['inputs'], mode='tensor')
        torch.save(out, {str(tmp / 'plain_out.pth')!r})
    """)
    run(['-c', script])
    plain = torch.load(tmp / 'plain_out.pth')

    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint

    from mmkd.registry import MODELS
    dcfg = Config.fromfile(cfg)
    init_default_scope('mmpretrain')
    # as the Runner does: the top-level data_preprocessor goes to the model
    distiller = MODELS.build(
        dict(dcfg.model, data_preprocessor=dcfg.data_preprocessor)).eval()
    load_checkpoint(distiller, osp.join(work_dir, 'epoch_2.pth'))
    with torch.no_grad():
        data = distiller.data_preprocessor(dict(inputs=list(inputs)), False)
        ours = distiller(data['inputs'], mode='tensor')
    torch.testing.assert_close(ours, plain)


def test_cls_train_amp_bf16_on_cpu_resumes(cls_setup):
    """--amp without CUDA: bf16 autocast steps (AutocastOptimWrapper), no
    loss-scaler state in the checkpoint, and resume continues from it."""
    if torch.cuda.is_available():
        pytest.skip('checks the CPU path of --amp')
    tmp, cfg = cls_setup['tmp'], cls_setup['cfg']
    work_dir = str(tmp / 'work_amp')
    out = run(['tools/train.py', cfg, '--work-dir', work_dir, '--amp'])
    assert 'distill.loss_kd' in out
    dumped = open(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                     'config.py'))[0]).read()
    assert "type='mmkd.AutocastOptimWrapper'" in dumped
    assert "dtype='bfloat16'" in dumped
    ckpt = torch.load(osp.join(work_dir, 'epoch_1.pth'), map_location='cpu',
                      weights_only=False)
    assert 'loss_scaler' not in ckpt['optimizer']
    assert ckpt['optimizer']['state']  # SGD momentum buffers
    assert all(v.dtype == torch.float32 for v in ckpt['state_dict'].values()
               if v.is_floating_point())
    out = run(['tools/train.py', cfg, '--work-dir', work_dir, '--amp',
               '--resume', '--cfg-options', 'train_cfg.max_epochs=2'])
    ckpt2 = torch.load(osp.join(work_dir, 'epoch_2.pth'), map_location='cpu',
                       weights_only=False)
    assert ckpt2['meta']['epoch'] == 2
    moved = [k for k, v in ckpt['state_dict'].items()
             if k.endswith('weight') and not torch.equal(
                 v, ckpt2['state_dict'][k])]
    assert any(k.startswith('student.backbone') for k in moved)
    # tools/test.py evaluates the student without the teacher's checkpoint
    out = run(['tools/test.py', cfg, osp.join(work_dir, 'epoch_2.pth'),
               '--work-dir', str(tmp / 'test_no_teacher'), '--cfg-options',
               f'model.teacher.checkpoint={tmp / "missing" / "t.pth"}'])
    assert 'accuracy/top1' in out


def test_cls_two_process_gloo(cls_setup):
    work_dir = str(cls_setup['tmp'] / 'work_ddp')
    proc = subprocess.run(
        ['bash', 'tools/train.sh', cls_setup['cfg'], '2', '--work-dir',
         work_dir, '--cfg-options', 'default_hooks.checkpoint.interval=1'],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, PYTHON=sys.executable, PORT='29533',
                 PYTHONWARNINGS='ignore'))
    assert proc.returncode == 0, proc.stderr[-5000:]
    log = '\n'.join(open(p).read() for p in glob.glob(
        osp.join(work_dir, '*', '*.log')))
    assert 'world_size: 2' in log or 'Distributed training: True' in log
    assert 'distill.loss_kd' in log
    assert osp.isfile(osp.join(work_dir, 'epoch_1.pth'))


def test_det_distill_train(tmp_path):
    pytest.importorskip('mmcv.ops', reason='mmdet needs mmcv with its ops')
    data = make_coco(str(tmp_path / 'coco'), num_train=4, num_val=2,
                     size=64)
    student_cfg = det_config(tmp_path / 'student.py', data, depth=18)
    teacher_cfg = det_config(tmp_path / 'teacher.py', data, depth=34)
    teacher_ckpt = save_random_teacher(teacher_cfg,
                                       str(tmp_path / 'teacher.pth'))
    cfg = distill_config(
        tmp_path / 'fitnets.py', student_cfg, teacher_cfg, teacher_ckpt, """
        taps=dict(s='student.neck', t='teacher.neck'),
        losses=dict(loss_fitnet=dict(type='FitNetLoss',
                                     inputs=dict(preds_S='s', preds_T='t'))),
        probe_input_shape=(3, 64, 64)""")
    work_dir = str(tmp_path / 'work')
    out = run(['tools/train.py', cfg, '--work-dir', work_dir])
    assert 'distill.loss_fitnet' in out
    assert 'loss_rpn_cls' in out and 'loss_bbox' in out  # student's own
    assert 'coco/bbox_mAP' in out  # mmdet's CocoMetric on the student

    img = sorted(glob.glob(osp.join(data['data_root'],
                                    data['val_img_prefix'], '*')))[0]
    ours = check_loads_without_mmkd(
        tmp_path, cfg, osp.join(work_dir, 'epoch_1.pth'),
        'mmdet.apis.init_detector', 'inference_detector', img)
    assert len(ours['feats']) == 5  # the FPN levels


def test_seg_distill_train(tmp_path):
    pytest.importorskip('mmcv.ops', reason='mmseg models need mmcv ops')
    data = make_cityscapes(str(tmp_path / 'cityscapes'), num_train=2,
                           num_val=1, size=(96, 64))
    student_cfg = seg_config(tmp_path / 'student.py', data, depth=18)
    teacher_cfg = seg_config(tmp_path / 'teacher.py', data, depth=34)
    teacher_ckpt = save_random_teacher(teacher_cfg,
                                       str(tmp_path / 'teacher.pth'))
    cfg = distill_config(
        tmp_path / 'at.py', student_cfg, teacher_cfg, teacher_ckpt, """
        taps=dict(s='student.backbone', t='teacher.backbone'),
        losses=dict(loss_at=dict(type='ATLoss', loss_weight=500.0,
                                 inputs=dict(preds_S='s', preds_T='t'))),
        probe_input_shape=(3, 64, 64)""")
    work_dir = str(tmp_path / 'work')
    out = run(['tools/train.py', cfg, '--work-dir', work_dir])
    assert 'distill.loss_at' in out and 'decode.loss_ce' in out
    assert 'mIoU' in out  # mmseg's IoUMetric on the student

    img = sorted(glob.glob(osp.join(data['data_root'], 'leftImg8bit', 'val',
                                    '*', '*.png')))[0]
    ours = check_loads_without_mmkd(
        tmp_path, cfg, osp.join(work_dir, 'iter_2.pth'),
        'mmseg.apis.init_model', 'inference_model', img)
    assert ours['seg_logits'].shape[0] == 19  # Cityscapes classes
