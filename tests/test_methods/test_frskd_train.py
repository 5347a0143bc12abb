"""configs/frskd/resnet18_cub.py through tools/train.py on a tiny CUB.

The tiny config inherits the shipped one unchanged and only points it at
the data written by ``mmkd.testing.make_cub`` (3 classes, 32 px, batch 2,
one epoch); the student keeps its 200-way head (the labels 0..2 are valid).
"""
import json
import os
import os.path as osp
import subprocess
import sys
import textwrap

from mmkd.testing import make_cub

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_frskd_cub_config_trains_through_tools_train(tmp_path):
    data = make_cub(str(tmp_path / 'cub'), num_classes=3, per_class=4, size=40)
    cfg = tmp_path / 'frskd_cub_tiny.py'
    cfg.write_text(
        textwrap.dedent(f"""
        _base_ = [{osp.join(ROOT, 'configs/frskd/resnet18_cub.py')!r}]
        train_pipeline = [
            dict(type='LoadImageFromFile'),
            dict(type='RandomResizedCrop', scale=32),
            dict(type='RandomFlip', prob=0.5, direction='horizontal'),
            dict(type='PackInputs'),
        ]
        test_pipeline = [
            dict(type='LoadImageFromFile'),
            dict(type='ResizeEdge', scale=36, edge='short'),
            dict(type='CenterCrop', crop_size=32),
            dict(type='PackInputs'),
        ]
        train_dataloader = dict(
            batch_size=2, num_workers=0,
            dataset=dict(data_root={data['data_root']!r},
                         pipeline=train_pipeline))
        val_dataloader = dict(
            batch_size=2, num_workers=0,
            dataset=dict(data_root={data['data_root']!r},
                         pipeline=test_pipeline))
        test_dataloader = val_dataloader
        train_cfg = dict(max_epochs=1)
        default_hooks = dict(logger=dict(interval=1))
        model = dict(probe_input_shape=(3, 32, 32))
        """))
    work = tmp_path / 'work'
    proc = subprocess.run(
        [sys.executable, 'tools/train.py',
         str(cfg), '--work-dir',
         str(work)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, PYTHONWARNINGS='ignore', OMP_NUM_THREADS='1'))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]

    scalars = [
        json.loads(line)
        for line in open(next(work.glob('*/vis_data/scalars.json')))
    ]
    train = [s for s in scalars if 'distill.loss_kd' in s]
    assert len(train) == data['num_train'] // 2  # one entry per iteration
    for entry in train:
        for key in ('loss', 'distill.loss_self_teacher_ce', 'distill.loss_kd',
                    'distill.loss_at'):
            assert key in entry and entry[key] == entry[key], key  # not NaN
    assert any('accuracy/top1' in s for s in scalars)  # the student's val
    assert (work / 'epoch_1.pth').is_file()
