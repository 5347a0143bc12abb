"""Soak test: many training steps of each kind of distiller, memory watched.

Each kind runs in a fresh process (so that one kind's freed memory cannot
hide another's growth) on tiny models and tiny in-memory batches, through
the distiller's own ``train_step`` with real MMEngine optimizer wrappers:

* ``kd``: a ``Distiller`` with a frozen teacher (tiny CIFAR ResNet-8 pair,
  16x16 grey images, batch 4): KD on the logits + FitNets through a
  ``ConvConnector``;
* ``frskd``: self-distillation, FRSKD's wiring (BiFPNc self-teacher on the
  three stages, GT cross-entropy + KD + AT);
* ``skd``: an ``AdversarialDistiller`` (tiny mmseg PSPNet pair, 64x64
  images, batch 2): pixel-wise + pair-wise + holistic term, and the critic's
  own WGAN-GP step with its optimizer wrapper.

The resident memory (``VmRSS``) is read after ``gc.collect()`` once the
warm-up steps are done and every ``--every`` steps after; a kind passes if
the last reading exceeds the one after warm-up by less than ``--limit``
percent and, after every step, no tap holds a tensor and the number of
forward hooks on the models is the one after building. One JSON line per
kind is appended to ``--out``; the exit status is 1 if a kind fails.

Usage::

    python tools/analysis_tools/soak.py [--steps 1000] [--warmup 100]
        [--kinds kd frskd skd] [--out docs/en/soak_results.jsonl]
"""
import argparse
import gc
import json
import os
import os.path as osp
import platform
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence

KINDS = ('kd', 'frskd', 'skd')


def rss_mb() -> float:
    """The process's resident set size in MiB (``VmRSS``)."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    raise RuntimeError('no VmRSS in /proc/self/status')


def build(kind: str, work_dir: str):
    """The distiller of ``kind``, its optimizer wrapper(s) and a list of
    batches (cycled)."""
    import torch
    from mmengine.optim import OptimWrapper
    from mmengine.registry import init_default_scope

    from mmkd.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS
    from mmkd.testing.task_configs import (cifar_classifier,
                                           kd_fitnet_distiller,
                                           pspnet_segmentor as segmentor,
                                           save_cifar_teacher)
    sgd = dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4)
    g = torch.Generator().manual_seed(0)
    if kind in ('kd', 'frskd'):
        from mmpretrain.structures import DataSample
        batches = [
            dict(
                inputs=[
                    torch.randint(0, 256, (1, 16, 16), generator=g).float()
                    for _ in range(4)
                ],
                data_samples=[
                    DataSample().set_gt_label(int(i))
                    for i in torch.randint(0, 5, (4, ), generator=g)
                ]) for _ in range(8)
        ]
    if kind == 'kd':
        teacher = save_cifar_teacher(osp.join(work_dir, 'teacher.pth'))
        init_default_scope('mmpretrain')
        model = MODELS.build(kd_fitnet_distiller(teacher))
        return model, OptimWrapper(
            torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)), \
            batches
    if kind == 'frskd':
        init_default_scope('mmpretrain')
        stages = ['s_layer1', 's_layer2', 's_layer3']
        model = MODELS.build(
            dict(
                type='Distiller',
                _scope_='mmkd',
                student=cifar_classifier(4),
                taps=dict(
                    s_layer1='student.backbone.layer1',
                    s_layer2='student.backbone.layer2',
                    s_layer3='student.backbone.layer3',
                    s_logits='student.head.fc'),
                connectors=dict(
                    self_teacher=dict(
                        type='BiFPNc',
                        inputs=stages,
                        num_classes=5,
                        width=2,
                        depth=2)),
                losses=dict(
                    loss_self_teacher_ce=dict(
                        type='GTCrossEntropyLoss',
                        inputs=dict(
                            logits='self_teacher.logits', gt='gt_label')),
                    loss_kd=dict(
                        type='KDLoss',
                        tau=4.0,
                        loss_weight=2.0,
                        inputs=dict(
                            preds_S='s_logits',
                            preds_T='self_teacher.logits')),
                    loss_at=dict(
                        type='ATLoss',
                        loss_weight=100.0,
                        inputs=dict(
                            preds_S=stages, preds_T='self_teacher.feats'))),
                probe_input_shape=(1, 16, 16)))
        return model, OptimWrapper(
            torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)), \
            batches
    if kind == 'skd':
        from mmengine.structures import PixelData
        from mmseg.structures import SegDataSample
        init_default_scope('mmseg')
        torch.manual_seed(1)
        teacher = osp.join(work_dir, 'seg_teacher.pth')
        torch.save({'state_dict': MODELS.build(segmentor(8)).state_dict()},
                   teacher)
        torch.manual_seed(0)
        model = MODELS.build(
            dict(
                type='AdversarialDistiller',
                _scope_='mmkd',
                student=segmentor(4),
                teacher=dict(model=segmentor(8), checkpoint=teacher),
                taps=dict(
                    s_logits='student.decode_head.conv_seg',
                    t_logits='teacher.decode_head.conv_seg',
                    s_feat=dict(
                        path='student.decode_head.conv_seg', io='input'),
                    t_feat=dict(
                        path='teacher.decode_head.conv_seg', io='input')),
                losses=dict(
                    loss_pi=dict(
                        type='PixelWiseLoss',
                        loss_weight=10.0,
                        inputs=dict(preds_S='s_logits', preds_T='t_logits')),
                    loss_pa=dict(
                        type='PairWiseLoss',
                        loss_weight=0.5,
                        inputs=dict(preds_S='s_feat', preds_T='t_feat'))),
                critic=dict(
                    type='SKDDiscriminator',
                    conv_dim=8,
                    num_blocks=1,
                    attention_after=(1, )),
                probe_input_shape=(3, 64, 64)))
        # Random labels on a 4-channel network: clipped, so that 1000 steps
        # stay finite (a skipped step would still be counted, not fatal).
        clipped = dict(
            optimizer=dict(sgd, lr=0.001), clip_grad=dict(max_norm=1.0))
        wrappers = OPTIM_WRAPPER_CONSTRUCTORS.build(
            dict(
                type='mmkd.DistillerOptimWrapperConstructor',
                optim_wrapper_cfg=dict(student=clipped, critic=clipped)))(
                    model)
        batches = []
        for _ in range(8):
            samples = []
            for _ in range(2):
                sample = SegDataSample()
                sample.gt_sem_seg = PixelData(
                    data=torch.randint(0, 3, (1, 64, 64), generator=g))
                sample.set_metainfo(
                    dict(
                        img_shape=(64, 64),
                        ori_shape=(64, 64),
                        pad_shape=(64, 64)))
                samples.append(sample)
            batches.append(
                dict(
                    inputs=[
                        torch.randint(0, 256, (3, 64, 64),
                                      generator=g).to(torch.uint8)
                        for _ in range(2)
                    ],
                    data_samples=samples))
        return model, wrappers, batches
    raise ValueError(f'unknown kind {kind!r}, expected one of {KINDS}')


def hook_count(model) -> int:
    """Forward (pre-)hooks on the distiller's modules and its teacher's."""
    modules = list(model.modules())
    if getattr(model, 'teacher', None) is not None:
        modules += list(model.teacher.modules())
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) for m in modules)


def soak_one(kind: str,
             steps: int,
             warmup: int,
             every: int,
             limit: float = 2.0) -> dict:
    """Train ``kind`` for ``steps`` steps in this process; the record."""
    import torch
    torch.set_num_threads(1)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as work_dir:
        model, optim_wrapper, batches = build(kind, work_dir)
    model.train()
    hooks = hook_count(model)
    readings: List[List[float]] = []
    leaks: List[str] = []
    skipped = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    for step in range(1, steps + 1):
        log_vars = model.train_step(batches[step % len(batches)],
                                    optim_wrapper)
        skipped += int(log_vars.get('nonfinite.skipped', 0))
        del log_vars
        held = [name for name, tap in model.taps.items() if tap.calls]
        if held and len(leaks) < 5:
            leaks.append(f'step {step}: taps {held} hold tensors')
        if hook_count(model) != hooks and len(leaks) < 5:
            leaks.append(f'step {step}: {hook_count(model)} hooks, '
                         f'{hooks} after building')
        if step == warmup or (step > warmup and
                              (step - warmup) % every == 0) or step == steps:
            gc.collect()
            readings.append([step, round(rss_mb(), 2)])
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    after_warmup = next(mb for s, mb in readings if s == warmup)
    growth = 100 * (readings[-1][1] - after_warmup) / after_warmup
    return dict(
        kind=kind,
        steps=steps,
        warmup=warmup,
        seconds=round(seconds, 1),
        cpu_seconds=round(cpu_seconds, 1),
        cpu_ms_per_step=round(1000 * cpu_seconds / steps, 1),
        skipped_steps=skipped,
        rss_after_warmup_mb=after_warmup,
        rss_end_mb=readings[-1][1],
        rss_max_mb=max(mb for _, mb in readings),
        growth_percent=round(growth, 3),
        limit_percent=limit,
        rss_mb=readings,
        hooks=hooks,
        leaks=leaks,
        passed=growth < limit and not leaks,
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        python=platform.python_version(),
        time=time.strftime('%Y-%m-%d %H:%M:%S'))


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--steps', type=int, default=1000)
    parser.add_argument('--warmup', type=int, default=100)
    parser.add_argument(
        '--every', type=int, default=100, help='steps between readings')
    parser.add_argument(
        '--limit',
        type=float,
        default=2.0,
        help='allowed growth after warm-up, percent')
    parser.add_argument('--kinds', nargs='+', default=list(KINDS))
    parser.add_argument('--out', default='work_dirs/soak/soak.jsonl')
    parser.add_argument(
        '--one', help=argparse.SUPPRESS)  # run one kind in this process
    args = parser.parse_args(argv)
    if not 0 < args.warmup < args.steps:
        parser.error('need 0 < --warmup < --steps')
    unknown = set(args.kinds) - set(KINDS)
    if unknown:
        parser.error(f'unknown kinds {sorted(unknown)}; choose from {KINDS}')
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.one:
        record = soak_one(args.one, args.steps, args.warmup, args.every,
                          args.limit)
        print(json.dumps(record), flush=True)
        return 0
    records: Dict[str, dict] = {}
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    for kind in args.kinds:
        out = subprocess.run([
            sys.executable,
            osp.abspath(__file__), '--one', kind, '--steps',
            str(args.steps), '--warmup',
            str(args.warmup), '--every',
            str(args.every), '--limit',
            str(args.limit)
        ],
                             capture_output=True,
                             text=True,
                             env=env)
        if out.returncode != 0:
            print(out.stderr, file=sys.stderr)
            raise RuntimeError(f'soak of {kind} failed (exit status '
                               f'{out.returncode})')
        records[kind] = json.loads(out.stdout.strip().splitlines()[-1])
        print(json.dumps(records[kind]), flush=True)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'a') as f:
        for record in records.values():
            f.write(json.dumps(record) + '\n')
    return 0 if all(r['passed'] for r in records.values()) else 1


if __name__ == '__main__':
    sys.exit(main())
