"""A converted student trains with its own library where mmkd cannot be
imported: tools/convert_to_student.py strips every mmkd-only key of the
distiller config (the per-part optimizer-wrapper constructor and schedulers
of SKD, mmkd hooks, imports, the distributed wrapper)."""
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from mmkd.testing import make_cityscapes, make_coco, make_cub
from mmkd.testing.task_configs import (cls_config, det_config, seg_config,
                                       write)


# Prepended to the training script: every import of mmkd (the package or a
# sub-module, however it is installed) raises ImportError.
HIDE_MMKD = textwrap.dedent('''
    import importlib.abc
    import sys

    class _HideMmkd(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == 'mmkd' or name.startswith('mmkd.'):
                raise ImportError(f'{name} is hidden in this process')
            return None

    sys.meta_path.insert(0, _HideMmkd())
    for _name in [m for m in sys.modules if m.split('.')[0] == 'mmkd']:
        del sys.modules[_name]
    try:
        import mmkd  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit('mmkd is importable: the test would prove nothing')
''')

TRAIN = textwrap.dedent('''
    import json
    import torch
    from mmengine.config import Config
    from mmengine.runner import Runner

    cfg = Config.fromfile(STUDENT_CFG)
    cfg.work_dir = WORK_DIR
    cfg.load_from = STUDENT_CKPT
    # one short training run, no validation
    if cfg.train_cfg.get('type') == 'IterBasedTrainLoop':
        cfg.train_cfg.max_iters = 1
    else:
        cfg.train_cfg.max_epochs = 1
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    runner = Runner.from_cfg(cfg)
    runner.train()
    loaded = torch.load(STUDENT_CKPT, weights_only=True)['state_dict']
    trained = runner.model.state_dict()
    changed = [k for k, v in loaded.items() if v.is_floating_point()
               and not torch.equal(v, trained[k].cpu())]
    finite = all(v.isfinite().all() for v in trained.values()
                 if v.is_floating_point())
    opt = runner.optim_wrapper
    print(json.dumps(dict(
        iters=runner.iter,
        changed=len(changed),
        loaded=sorted(loaded) == sorted(trained),
        finite=bool(finite),
        wrapper=type(opt).__name__,
        initial_lrs=sorted({g['initial_lr'] for g in
                            opt.optimizer.param_groups}),
        schedulers=[type(s).__name__ for s in runner.param_schedulers],
        hooks=[type(h).__name__ for h in runner.hooks],
        mmkd_modules=[m for m in sys.modules if m.split('.')[0] == 'mmkd'])))
''')

# The mmkd-only parts of an SKD config (configs/skd/skd_pspnet_*.py): the
# per-part optimizer wrappers and schedulers, the separate DDP wrapper, an
# mmkd hook, mmkd's import; a kept non-mmkd hook.
MMKD_PARTS = '''
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
optim_wrapper = dict(
    _delete_=True,
    constructor='mmkd.DistillerOptimWrapperConstructor',
    student=dict(
        type='OptimWrapper',
        optimizer=dict(type='SGD', lr=0.005, momentum=0.9),
        paramwise_cfg=dict(custom_keys={
            'student.backbone': dict(lr_mult=0.5),
            'connectors.': dict(lr_mult=2.0)})),
    critic=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=4e-4)))
param_scheduler = dict(
    _delete_=True,
    student=[dict(type='LinearLR', start_factor=0.5, by_epoch=False,
                  begin=0, end=10)],
    critic=[dict(type='ConstantLR', factor=1.0, by_epoch=False)])
custom_hooks = [
    dict(type='mmkd.DistillLossWarmupHook', warmup=5, by_epoch=False),
    dict(type='EmptyCacheHook'),
]
model_wrapper_cfg = dict(type='MMSeparateDistributedDataParallel')
'''


def distiller_config(path, task_cfg, kind):
    """An SKD (segmentation) or FitNets distiller config over a task config,
    with all of :data:`MMKD_PARTS`."""
    if kind == 'skd':
        model = f'''
model = dict(
    _delete_=True, _scope_='mmkd', type='AdversarialDistiller',
    student=_base_.model,
    teacher=dict(config={task_cfg!r}, checkpoint='teacher.pth'),
    taps=dict(s_logits='student.decode_head.conv_seg',
              t_logits='teacher.decode_head.conv_seg'),
    losses=dict(loss_pi=dict(type='PixelWiseLoss', loss_weight=10.0,
                             inputs=dict(preds_S='s_logits',
                                         preds_T='t_logits'))),
    critic=dict(type='SKDDiscriminator', num_blocks=1, attention_after=()),
    generator_loss=dict(type='HolisticGeneratorLoss', loss_weight=0.1),
    critic_loss=dict(type='HolisticCriticLoss', lambda_gp=10.0,
                     loss_weight=0.1))
'''
    else:
        model = f'''
model = dict(
    _delete_=True, _scope_='mmkd', type='Distiller',
    student=_base_.model,
    teacher=dict(config={task_cfg!r}, checkpoint='teacher.pth'),
    taps=dict(s='student.backbone', t='teacher.backbone'),
    connectors=dict(hint=dict(type='ConvConnector', inputs='s')),
    losses=dict(loss_fitnet=dict(type='FitNetLoss',
                                 inputs=dict(preds_S='hint', preds_T='t'))))
'''
    return write(path, f'_base_ = [{task_cfg!r}]\n', model, MMKD_PARTS)


def distiller_checkpoint(task_cfg, out, extra_parts):
    """A distiller-layout checkpoint: the student's weights under
    ``student.`` (random weights stand in for trained ones), plus weights of
    the other distiller parts."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from mmkd.models.utils import build_task_model
    cfg = Config.fromfile(task_cfg)
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    torch.manual_seed(0)
    student = build_task_model(cfg.model)
    state = {f'student.{k}': v for k, v in student.state_dict().items()}
    state.update({k: torch.ones(2) for k in extra_parts})
    torch.save(dict(state_dict=state, meta=dict(iter=10, seed=0)), out)
    return out


def _cls(tmp):
    data = make_cub(str(tmp / 'cub'), num_classes=3, per_class=4, size=32)
    return cls_config(tmp / 'task.py', data), 'fitnets'


def _det(tmp):
    pytest.importorskip('mmcv.ops', reason='mmdet needs mmcv with its ops')
    data = make_coco(str(tmp / 'coco'), num_train=2, num_val=1, size=64)
    return det_config(tmp / 'task.py', data), 'fitnets'


def _seg(tmp):
    pytest.importorskip('mmcv.ops', reason='mmseg models need mmcv ops')
    data = make_cityscapes(str(tmp / 'cityscapes'), num_train=2, num_val=1,
                           size=(96, 64))
    return seg_config(tmp / 'task.py', data), 'skd'


@pytest.mark.parametrize('make', [_cls, _det, _seg],
                         ids=['mmpretrain', 'mmdet', 'mmseg-skd'])
def test_converted_student_trains_without_mmkd(tmp_path, make, load_tool):
    task_cfg, kind = make(tmp_path)
    cfg = distiller_config(tmp_path / 'distill.py', task_cfg, kind)
    ckpt = distiller_checkpoint(
        task_cfg, str(tmp_path / 'distill.pth'),
        ['critic.last.weight'] if kind == 'skd' else
        ['connectors.hint.conv.weight'])
    student_ckpt = str(tmp_path / 'student.pth')
    load_tool('convert_to_student.py').convert(cfg, ckpt, student_ckpt)
    student_cfg = str(tmp_path / 'student.py')
    assert 'mmkd' not in open(student_cfg).read()

    script = HIDE_MMKD + '\n'.join([
        f'STUDENT_CFG = {student_cfg!r}',
        f'STUDENT_CKPT = {student_ckpt!r}',
        f'WORK_DIR = {str(tmp_path / "work")!r}',
    ]) + TRAIN
    proc = subprocess.run([sys.executable, '-c', script],
                          cwd=str(tmp_path),
                          capture_output=True,
                          text=True,
                          timeout=600,
                          env=dict(os.environ, PYTHONWARNINGS='ignore'))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out['mmkd_modules'] == []
    assert out['iters'] >= 1
    assert out['loaded'] and out['changed'] > 0 and out['finite']
    # the student's own wrapper, scheduler and the non-mmkd hook survive
    assert out['wrapper'] == 'OptimWrapper'
    assert out['initial_lrs'] == [0.0025, 0.005]  # backbone lr_mult 0.5
    assert out['schedulers'] == ['LinearLR']
    assert 'EmptyCacheHook' in out['hooks']
    assert not any('Distill' in h for h in out['hooks'])
