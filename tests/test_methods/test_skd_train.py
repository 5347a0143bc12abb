"""The released SKD (+pixel +pair +holistic) Cityscapes config trained for 2
iterations through tools/train.py on tiny Cityscapes-layout data, then
converted to a plain student checkpoint."""
import glob
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from mmkd.testing import make_cityscapes
from mmkd.testing.task_configs import seg_config, seg_data, write

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SKD_CFG = osp.join(ROOT, 'configs', 'skd',
                   'skd_pspnet_r101-r18-d8_4xb2-80k_cityscapes-512x1024.py')


def run(args, timeout=300):
    proc = subprocess.run(
        [sys.executable] + args,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ, PYTHONWARNINGS='ignore'))
    if proc.returncode != 0:
        raise AssertionError(f'{args} failed:\n{proc.stdout[-3000:]}\n'
                             f'{proc.stderr[-5000:]}')
    return proc.stdout + proc.stderr


def save_random_teacher(task_cfg: str, out: str) -> str:
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from mmkd.models.utils import build_task_model
    cfg = Config.fromfile(task_cfg)
    init_default_scope(cfg.default_scope)
    torch.manual_seed(0)
    torch.save({'state_dict': build_task_model(cfg.model).state_dict()}, out)
    return out


@pytest.mark.skipif(not osp.isfile(SKD_CFG), reason='config missing')
def test_skd_all_config_trains_and_converts(tmp_path):
    data = make_cityscapes(
        str(tmp_path / 'cityscapes'), num_train=2, num_val=1, size=(96, 64))
    teacher_cfg = seg_config(tmp_path / 'teacher.py', data, depth=18)
    teacher_ckpt = save_random_teacher(teacher_cfg,
                                       str(tmp_path / 'teacher.pth'))
    # The released config, with seg_config's tiny data, a tiny teacher, no
    # ImageNet download, a 1-block critic for the 8x8 logits of 64x64 crops
    # and a 2-iteration poly schedule.
    cfg = write(
        tmp_path / 'skd_tiny.py', f"""
        _base_ = [{SKD_CFG!r}]
        """, seg_data(data), f"""
        model = dict(
            student=dict(pretrained=None,
                         data_preprocessor=dict(size=crop_size)),
            teacher=dict(config={teacher_cfg!r}, checkpoint={teacher_ckpt!r}),
            critic=dict(conv_dim=8, num_blocks=1, attention_after=(1, )),
            probe_input_shape=(3, 64, 64))
        train_cfg = dict(max_iters=2, val_interval=2)
        param_scheduler = dict(
            student=[dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0,
                          end=3, by_epoch=False)],
            critic=[dict(type='PolyLR', eta_min=0., power=0.9, begin=0,
                         end=3, by_epoch=False)])
        default_hooks = dict(logger=dict(interval=1),
                             checkpoint=dict(interval=2))
        """)
    work_dir = str(tmp_path / 'work')
    out = run(['tools/train.py', cfg, '--work-dir', work_dir])
    assert 'mIoU' in out  # mmseg's IoUMetric on the student

    logs = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    with open(logs[0]) as f:
        scalars = [json.loads(line) for line in f]
    train = [s for s in scalars if 'loss' in s]
    assert [s['iter'] for s in train] == [1, 2]
    for key in ('decode.loss_ce', 'aux.loss_ce', 'distill.loss_pi',
                'distill.loss_pa', 'distill.loss_holistic', 'critic.loss_wd',
                'critic.loss_gp', 'critic.skipped'):
        assert all(key in s for s in train), key
    # one poly scheduler per optimizer: MMEngine's PolyLR gives
    # lr_t = (lr_0 - min) (1 - t / (end - 1))^0.9 + min, here end - 1 = 2;
    # student from 0.01 (min 1e-4), critic from 4e-4 (min 0)
    assert train[0]['critic.lr'] == pytest.approx(4e-4)
    assert train[1]['critic.lr'] == pytest.approx(4e-4 * 0.5**0.9)
    assert train[0]['student.lr'] == pytest.approx(0.01)
    assert train[1]['student.lr'] == pytest.approx((0.01 - 1e-4) * 0.5**0.9 +
                                                   1e-4)

    ckpt = osp.join(work_dir, 'iter_2.pth')
    full = torch.load(ckpt, map_location='cpu', weights_only=False)
    assert any(k.startswith('critic.') for k in full['state_dict'])
    assert set(full['optimizer']) == {'student', 'critic'}
    student_ckpt = str(tmp_path / 'student.pth')
    run(['tools/convert_to_student.py', cfg, ckpt, student_ckpt])
    converted = torch.load(
        student_ckpt, map_location='cpu', weights_only=True)['state_dict']
    expected = {
        k[len('student.'):]: v
        for k, v in full['state_dict'].items() if k.startswith('student.')
    }
    assert set(converted) == set(expected)
    assert not any(
        k.startswith(('critic', 'teacher', 'student.', 'connectors',
                      'distill_losses', 'generator_loss', 'critic_loss'))
        for k in converted)
    for k, v in expected.items():
        assert torch.equal(converted[k], v)
