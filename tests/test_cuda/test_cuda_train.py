"""Training on CUDA through the tools: ``tools/train.py --amp`` (float16
with MMEngine's dynamic loss scaler, its state saved and resumed), the
checkpoint converted by ``tools/convert_to_student.py`` and loaded on a
CPU-only process without mmkd, and ``tools/train.sh CONFIG 1`` through
torchrun with NCCL. Tiny CUB-layout data, mmpretrain ResNets at 32 px."""
import glob
import os
import os.path as osp
import subprocess
import sys
import textwrap

import pytest
import torch

from mmkd.testing import make_cub
from mmkd.testing.task_configs import cls_config, write

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        not torch.cuda.is_available(), reason='needs a CUDA device')
]
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def run(args, env=None, timeout=300):
    proc = subprocess.run(
        args, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
        env=dict(os.environ, PYTHONWARNINGS='ignore', **(env or {})))
    assert proc.returncode == 0, (f'{args} failed:\n{proc.stdout[-3000:]}\n'
                                  f'{proc.stderr[-5000:]}')
    return proc.stdout + proc.stderr


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from mmkd.models.utils import build_task_model
    tmp = tmp_path_factory.mktemp('cuda_train')
    data = make_cub(str(tmp / 'cub'), num_classes=3, per_class=8, size=40)
    student_cfg = cls_config(tmp / 'student.py', data, depth=18)
    teacher_cfg = cls_config(tmp / 'teacher.py', data, depth=34)
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    teacher = build_task_model(Config.fromfile(teacher_cfg).model)
    teacher_ckpt = str(tmp / 'teacher.pth')
    torch.save({'state_dict': teacher.state_dict()}, teacher_ckpt)
    cfg = write(tmp / 'kd.py', f"""
        _base_ = [{student_cfg!r}]
        custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
        model = dict(
            _delete_=True, _scope_='mmkd', type='Distiller',
            student=_base_.model,
            teacher=dict(config={teacher_cfg!r}, checkpoint={teacher_ckpt!r}),
            taps=dict(s='student.head.fc', t='teacher.head.fc'),
            losses=dict(loss_kd=dict(type='KDLoss', tau=4.0,
                                     inputs=dict(preds_S='s', preds_T='t'))),
            probe_input_shape=(3, 32, 32))
        """)
    return dict(tmp=tmp, cfg=cfg)


def test_amp_train_resume_convert_load_on_cpu(setup):
    tmp, cfg = setup['tmp'], setup['cfg']
    work = str(tmp / 'work_amp')
    # a small initial scale that grows every 3 iterations: the scale in the
    # second epoch's checkpoint shows whether resume restored it
    scale_opts = ['optim_wrapper.loss_scale.init_scale=1024.0',
                  'optim_wrapper.loss_scale.growth_interval=3']
    out = run([sys.executable, 'tools/train.py', cfg, '--work-dir', work,
               '--amp', '--cfg-options'] + scale_opts)
    assert 'distill.loss_kd' in out
    dumped = open(glob.glob(osp.join(work, '*', 'vis_data',
                                     'config.py'))[0]).read()
    assert "type='AmpOptimWrapper'" in dumped
    ckpt1 = torch.load(osp.join(work, 'epoch_1.pth'), map_location='cpu',
                       weights_only=False)
    scale1 = ckpt1['optimizer']['loss_scaler']['scale']
    assert scale1 > 1024.0  # grown during the first epoch
    assert all(v.dtype == torch.float32
               for v in ckpt1['state_dict'].values()
               if v.is_floating_point())

    run([sys.executable, 'tools/train.py', cfg, '--work-dir', work, '--amp',
         '--resume', '--cfg-options', 'train_cfg.max_epochs=2'] +
        scale_opts)
    ckpt2 = torch.load(osp.join(work, 'epoch_2.pth'), map_location='cpu',
                       weights_only=False)
    assert ckpt2['meta']['epoch'] == 2
    # resumed from scale1 (a fresh scaler would restart at 1024 and reach
    # scale1 again after one epoch)
    assert ckpt2['optimizer']['loss_scaler']['scale'] > scale1

    # convert the CUDA-trained checkpoint; load it where no GPU is visible
    # and mmkd cannot be imported; same outputs as the distiller's student
    student_ckpt = str(tmp / 'student.pth')
    run([sys.executable, 'tools/convert_to_student.py', cfg,
         osp.join(work, 'epoch_2.pth'), student_ckpt])
    inputs = torch.rand(2, 3, 32, 32) * 255
    torch.save(inputs, tmp / 'inputs.pth')
    script = textwrap.dedent(f"""
        import sys
        sys.modules['mmkd'] = None  # any import of mmkd fails
        import torch
        from mmpretrain.apis import init_model
        assert not torch.cuda.is_available()
        model = init_model({str(tmp / 'student.py')!r}, {student_ckpt!r},
                           device='cpu')
        inputs = torch.load({str(tmp / 'inputs.pth')!r})
        with torch.no_grad():
            data = model.data_preprocessor(dict(inputs=list(inputs)), False)
            out = model(data['inputs'], mode='tensor')
        torch.save(out, {str(tmp / 'plain_out.pth')!r})
    """)
    run([sys.executable, '-c', script], env=dict(CUDA_VISIBLE_DEVICES=''))
    plain = torch.load(tmp / 'plain_out.pth')

    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint

    from mmkd.registry import MODELS
    dcfg = Config.fromfile(cfg)
    init_default_scope('mmpretrain')
    distiller = MODELS.build(
        dict(dcfg.model, data_preprocessor=dcfg.data_preprocessor)).eval()
    load_checkpoint(distiller, osp.join(work, 'epoch_2.pth'),
                    map_location='cpu')
    with torch.no_grad():
        data = distiller.data_preprocessor(dict(inputs=list(inputs)), False)
        ours = distiller(data['inputs'], mode='tensor')
    assert ours.device.type == 'cpu'
    torch.testing.assert_close(ours, plain)


def test_train_sh_one_gpu_nccl(setup):
    work = str(setup['tmp'] / 'work_nccl')
    out = run(['bash', 'tools/train.sh', setup['cfg'], '1', '--work-dir',
               work, '--amp'],
              env=dict(PYTHON=sys.executable, PORT='29541'))
    log = '\n'.join(open(p).read()
                    for p in glob.glob(osp.join(work, '*', '*.log')))
    assert 'Distributed training: True' in log
    assert "backend='nccl'" in log
    assert 'CPU (gloo) run' not in log + out
    # the distiller's own DDP wrapper: its guarded train_step runs
    assert 'DistillerDistributedDataParallel' in log + out
    assert 'distill.loss_kd' in log
    assert osp.isfile(osp.join(work, 'epoch_1.pth'))
