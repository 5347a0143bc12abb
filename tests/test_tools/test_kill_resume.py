"""SIGKILL in the middle of training, ``--resume``, and the weights of an
uninterrupted run (docs/en/reliability.md).

Each run is a real ``tools/train.py`` process on tiny real data. The killed
run is stopped deterministically while it writes a checkpoint: that
checkpoint's ``.partial`` file is a named pipe, so the writer blocks after
the pipe's buffer; the test reads 1 MiB of the checkpoint from the pipe and
sends SIGKILL to the blocked writer. The run had completed the checkpoint
before (``max_keep_ckpts=1``, so MMEngine's own hook would already have
deleted it).
"""
import os
import os.path as osp
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from mmkd.engine.hooks.safe_checkpoint_hook import (checkpoint_problem,
                                                    resolve_auto_resume)
from mmkd.testing import make_cityscapes, make_cub
from mmkd.testing.task_configs import cls_config, seg_config, seg_data, write

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SKD_CFG = osp.join(ROOT, 'configs', 'skd',
                   'skd_pspnet_r101-r18-d8_4xb2-80k_cityscapes-512x1024.py')
ENV = dict(os.environ, PYTHONWARNINGS='ignore', OMP_NUM_THREADS='1')

pytestmark = pytest.mark.skipif(
    not hasattr(os, 'mkfifo'), reason='needs named pipes (POSIX)')


def train(cfg, work_dir, *extra, expect_rc=0):
    proc = subprocess.run(
        [sys.executable, 'tools/train.py', cfg, '--work-dir', work_dir,
         *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=ENV)
    out = proc.stdout + proc.stderr
    if (proc.returncode == 0) != (expect_rc == 0):
        raise AssertionError(f'rc={proc.returncode}:\n{out[-6000:]}')
    return out


def kill_while_writing(cfg, work_dir, partial_name, timeout=240):
    """Train until the run is writing ``partial_name``, read 1 MiB of that
    checkpoint, then SIGKILL the run. Returns the bytes read."""
    os.makedirs(work_dir)
    fifo = osp.join(work_dir, partial_name)
    os.mkfifo(fifo)
    log = open(osp.join(osp.dirname(work_dir), 'killed_run.log'), 'w+')
    proc = subprocess.Popen(
        [sys.executable, 'tools/train.py', cfg, '--work-dir', work_dir],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=ENV)
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    got, deadline = 0, time.time() + timeout
    try:
        while got < 1 << 20:
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:  # the writer is there, no data yet
                chunk = b''
            if chunk:
                got += len(chunk)
                continue
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                log.seek(0)
                raise AssertionError('the run ended before writing '
                                     f'{partial_name}:\n{log.read()[-6000:]}')
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        os.close(fd)
        log.close()
    os.remove(fifo)
    return got


def load(path):
    return torch.load(path, map_location='cpu', weights_only=True)


def assert_same(a, b, where=''):
    """Every tensor equal (torch.equal), everything else ==."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype, where
        assert torch.equal(a, b), f'{where} differs'
    elif isinstance(a, dict):
        assert set(a) == set(b), f'{where}: keys {set(a) ^ set(b)}'
        for k in a:
            assert_same(a[k], b[k], f'{where}.{k}')
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f'{where}[{i}]')
    else:
        assert a == b, f'{where}: {a!r} != {b!r}'


def assert_same_training_state(ckpt_a, ckpt_b):
    a, b = load(ckpt_a), load(ckpt_b)
    assert a['meta']['iter'] == b['meta']['iter']
    assert a['state_dict'], 'no weights'
    assert_same(a['state_dict'], b['state_dict'], 'state_dict')
    assert_same(a['optimizer'], b['optimizer'], 'optimizer')
    assert_same(a['param_schedulers'], b['param_schedulers'],
                'param_schedulers')
    return a


def save_random_teacher(task_cfg: str, out: str) -> str:
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from mmkd.models.utils import build_task_model
    cfg = Config.fromfile(task_cfg)
    init_default_scope(cfg.default_scope)
    torch.manual_seed(0)
    torch.save({'state_dict': build_task_model(cfg.model).state_dict()}, out)
    return out


@pytest.fixture(scope='module')
def kd_runs(tmp_path_factory):
    """KD on CUB-layout data, 2 epochs of 4 iterations, random crops and
    flips, a per-epoch LR step; checkpoints every 3 iterations (inside the
    epochs). Runs: uninterrupted (``a``), and killed while writing
    ``iter_6.pth`` (``b``)."""
    tmp = tmp_path_factory.mktemp('kd')
    data = make_cub(str(tmp / 'cub'), num_classes=2, per_class=8, size=40)
    student_cfg = cls_config(tmp / 'student.py', data, depth=18)
    teacher_ckpt = save_random_teacher(student_cfg, str(tmp / 'teacher.pth'))
    cfg = write(
        tmp / 'kd.py', f"""
        _base_ = [{student_cfg!r}]
        custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
        model = dict(
            _delete_=True, _scope_='mmkd', type='Distiller',
            student=_base_.model,
            teacher=dict(config={student_cfg!r}, checkpoint={teacher_ckpt!r}),
            taps=dict(s='student.head.fc', t='teacher.head.fc'),
            losses=dict(loss_kd=dict(type='KDLoss', tau=4.0,
                                     inputs=dict(preds_S='s', preds_T='t'))),
            probe_input_shape=(3, 32, 32))
        train_dataloader = dict(dataset=dict(pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='RandomResizedCrop', scale=32),
            dict(type='RandomFlip', prob=0.5, direction='horizontal'),
            dict(type='PackInputs'),
        ]))
        param_scheduler = dict(type='MultiStepLR', by_epoch=True,
                               milestones=[1], gamma=0.1)
        train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=1)
        randomness = dict(seed=0, deterministic=True)
        default_hooks = dict(checkpoint=dict(
            type='CheckpointHook', interval=3, by_epoch=False,
            max_keep_ckpts=1))
        """)
    work_a, work_b = str(tmp / 'a'), str(tmp / 'b')
    out_a = train(cfg, work_a)
    read = kill_while_writing(cfg, work_b, 'iter_6.pth.partial')
    # a copy for the tests below (the resumed run rotates iter_3 out)
    ckpt3 = str(tmp / 'iter_3_of_b.pth')
    shutil.copy(osp.join(work_b, 'iter_3.pth'), ckpt3)
    return dict(tmp=tmp, cfg=cfg, work_a=work_a, work_b=work_b, out_a=out_a,
                read=read, ckpt3=ckpt3)


def test_kd_kill_mid_epoch_resume_matches_uninterrupted(kd_runs):
    work_a, work_b = kd_runs['work_a'], kd_runs['work_b']
    assert 'mmkd.SafeCheckpointHook' in kd_runs['out_a']
    assert 'ExactResumeEpochBasedTrainLoop' in kd_runs['out_a']
    # The kill came inside the write of iter_6 (1 MiB of it read, the rest
    # never written): the previous checkpoint is complete, still there
    # although max_keep_ckpts=1, and the one last_checkpoint names.
    assert kd_runs['read'] >= 1 << 20
    ckpt3 = osp.join(work_b, 'iter_3.pth')
    assert checkpoint_problem(ckpt3) is None
    assert not osp.exists(osp.join(work_b, 'iter_6.pth'))
    with open(osp.join(work_b, 'last_checkpoint')) as f:
        assert f.read().strip() == ckpt3
    assert load(ckpt3)['meta']['iter'] == 3  # inside epoch 1 (4 batches)

    # Worse than a kill: last_checkpoint names a truncated file (what an
    # in-place, non-atomic writer leaves after a crash). Resume must fall
    # back to iter_3 and say so.
    truncated = osp.join(work_b, 'iter_6.pth')
    with open(ckpt3, 'rb') as src, open(truncated, 'wb') as dst:
        dst.write(src.read()[:1 << 20])
    with open(osp.join(work_b, 'last_checkpoint'), 'w') as f:
        f.write(truncated)

    out = train(kd_runs['cfg'], work_b, '--resume')
    assert f'names {truncated}, which is not a complete torch' in out
    assert f'resuming from {ckpt3}, the newest complete checkpoint' in out
    assert 'resumed epoch: 0, iter: 3' in out
    assert 'skipping its first 3 batches' in out
    assert 'another `model` config' not in out  # same config, no warning
    final = assert_same_training_state(
        osp.join(work_a, 'iter_8.pth'), osp.join(work_b, 'iter_8.pth'))
    assert final['meta']['epoch'] == 1 and final['meta']['iter'] == 8
    # one LR step (x0.1), after epoch 1; iter_8 is saved before epoch 2's
    assert final['param_schedulers'][0]['last_step'] == 1
    assert final['optimizer']['param_groups'][0]['lr'] == pytest.approx(1e-3)


def test_resume_from_damaged_explicit_checkpoint_fails(kd_runs, tmp_path):
    bad = str(tmp_path / 'iter_3.pth')
    with open(kd_runs['ckpt3'], 'rb') as src, \
            open(bad, 'wb') as dst:
        dst.write(src.read()[:-100])
    out = train(kd_runs['cfg'], str(tmp_path / 'work'), '--resume', bad,
                expect_rc=1)
    assert f'--resume {bad} is not a complete torch checkpoint' in out


def test_load_from_inside_checkpoint_dir_is_not_overwritten(kd_runs):
    """A run that starts from ``load_from=<work dir>/iter_8.pth`` would write
    ``iter_8.pth`` itself: it stops before training, the file intact."""
    work_a = kd_runs['work_a']
    ckpt = osp.join(work_a, 'iter_8.pth')
    before = os.stat(ckpt).st_mtime_ns, load(ckpt)['state_dict']
    out = train(kd_runs['cfg'], work_a, '--cfg-options',
                f'load_from={ckpt}', expect_rc=1)
    assert f'load_from {ckpt} is in the checkpoint directory' in out
    assert 'already holds 1 checkpoint(s) of an earlier run' in out
    assert os.stat(ckpt).st_mtime_ns == before[0]
    assert_same(load(ckpt)['state_dict'], before[1])


def test_resume_with_another_model_config_warns(kd_runs, tmp_path):
    work = str(tmp_path / 'copy')
    shutil.copytree(kd_runs['work_a'], work)
    with open(osp.join(work, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(work, 'iter_8.pth'))
    # the run is complete (epoch 2 of 2): resume loads, nothing to train
    out = train(kd_runs['cfg'], work, '--resume', '--cfg-options',
                'model.losses.loss_kd.tau=2.0')
    assert 'written by a run with another `model` config (differs in: ' \
        'losses)' in out


def test_resolve_auto_resume(kd_runs, tmp_path):
    """Which file ``--resume`` loads, on real checkpoint files."""
    good = str(tmp_path / 'iter_3.pth')
    shutil.copy(kd_runs['ckpt3'], good)
    record = tmp_path / 'last_checkpoint'
    tmpl = 'iter_{}.pth'
    assert checkpoint_problem(good) is None

    # no last_checkpoint, a complete checkpoint: MMEngine would start over
    path, msg, fallback = resolve_auto_resume(str(tmp_path), str(tmp_path),
                                              tmpl)
    assert (path, fallback) == (good, True) and 'there is no' in msg
    # last_checkpoint empty (a kill between truncate and write)
    record.write_text('')
    path, msg, fallback = resolve_auto_resume(str(tmp_path), str(tmp_path),
                                              tmpl)
    assert (path, fallback) == (good, True) and 'is empty' in msg
    # a later checkpoint with a flipped byte (CRC) and one truncated: the
    # newest complete one is taken
    data = open(good, 'rb').read()
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    (tmp_path / 'iter_9.pth').write_bytes(bytes(flipped))
    (tmp_path / 'iter_6.pth').write_bytes(data[:len(data) // 2])
    assert 'CRC' in checkpoint_problem(str(tmp_path / 'iter_9.pth'))
    record.write_text(str(tmp_path / 'iter_9.pth'))
    path, msg, fallback = resolve_auto_resume(str(tmp_path), str(tmp_path),
                                              tmpl)
    assert (path, fallback) == (good, True)
    # last_checkpoint names the complete one
    record.write_text(good)
    assert resolve_auto_resume(str(tmp_path), str(tmp_path),
                               tmpl)[::2] == (good, False)
    # only damaged checkpoints: a clear error
    os.remove(good)
    with pytest.raises(RuntimeError, match='holds no other complete'):
        resolve_auto_resume(str(tmp_path), str(tmp_path), tmpl)
    # nothing at all: a fresh start, as MMEngine does
    empty = tmp_path / 'empty'
    empty.mkdir()
    assert resolve_auto_resume(str(empty), str(empty), tmpl)[::2] == (None,
                                                                      False)


@pytest.mark.skipif(not osp.isfile(SKD_CFG), reason='config missing')
def test_skd_two_optimizers_kill_resume_matches_uninterrupted(tmp_path):
    """SKD (student + WGAN-GP critic, two optimizers and schedulers),
    iteration-based: killed while writing iter_4, resumed from iter_2,
    which was followed by a validation in the interrupted run. The critic's
    gradient penalty draws from torch's generator at every step."""
    data = make_cityscapes(
        str(tmp_path / 'cityscapes'), num_train=2, num_val=1, size=(96, 64))
    teacher_cfg = seg_config(tmp_path / 'teacher.py', data, depth=18)
    teacher_ckpt = save_random_teacher(teacher_cfg,
                                       str(tmp_path / 'teacher.pth'))
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
        train_cfg = dict(max_iters=5, val_interval=2)
        param_scheduler = dict(
            student=[dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0,
                          end=5, by_epoch=False)],
            critic=[dict(type='PolyLR', eta_min=0., power=0.9, begin=0,
                         end=5, by_epoch=False)])
        randomness = dict(seed=0, deterministic=True)
        default_hooks = dict(logger=dict(interval=1), checkpoint=dict(
            interval=2, max_keep_ckpts=1))
        """)
    work_a, work_b = str(tmp_path / 'a'), str(tmp_path / 'b')
    out = train(cfg, work_a)
    assert 'ExactResumeIterBasedTrainLoop' in out
    kill_while_writing(cfg, work_b, 'iter_4.pth.partial')
    with open(osp.join(work_b, 'last_checkpoint')) as f:
        assert f.read().strip() == osp.join(work_b, 'iter_2.pth')

    out = train(cfg, work_b, '--resume')
    assert 'resumed epoch: 0, iter: 2' in out
    final = assert_same_training_state(
        osp.join(work_a, 'iter_5.pth'), osp.join(work_b, 'iter_5.pth'))
    assert set(final['optimizer']) == {'student', 'critic'}
    assert any(k.startswith('critic.') for k in final['state_dict'])


def test_enable_safe_checkpoints_switches_distillation_configs_only():
    from mmengine.config import Config

    from mmkd.engine.runner import enable_safe_checkpoints

    def cfg(**kw):
        return Config(dict(
            default_hooks=dict(checkpoint=dict(
                type='CheckpointHook', interval=3, by_epoch=False,
                max_keep_ckpts=2)),
            train_cfg=dict(by_epoch=True, max_epochs=4, val_interval=2),
            **kw))

    plain = cfg(model=dict(type='ImageClassifier'))
    assert not enable_safe_checkpoints(plain)
    assert plain.default_hooks.checkpoint.type == 'CheckpointHook'
    assert plain.train_cfg.by_epoch is True

    for kd in (cfg(custom_imports=dict(imports=['mmkd'])),
               cfg(model=dict(_scope_='mmkd', type='Distiller'))):
        assert enable_safe_checkpoints(kd)
        assert kd.default_hooks.checkpoint == dict(
            type='mmkd.SafeCheckpointHook', interval=3, by_epoch=False,
            max_keep_ckpts=2)
        assert kd.train_cfg == dict(
            type='mmkd.ExactResumeEpochBasedTrainLoop', max_epochs=4,
            val_interval=2)

    # no checkpoint hook given: MMEngine's default, made safe; the iteration
    # loop by type; a user's own hook and loop are kept; None stays None
    kd = Config(dict(custom_imports=dict(imports=['mmkd']),
                     train_cfg=dict(type='IterBasedTrainLoop', max_iters=5)))
    enable_safe_checkpoints(kd)
    assert kd.default_hooks.checkpoint == dict(
        type='mmkd.SafeCheckpointHook', interval=1)
    assert kd.train_cfg.type == 'mmkd.ExactResumeIterBasedTrainLoop'
    own = Config(dict(
        custom_imports=dict(imports=['mmkd']),
        default_hooks=dict(checkpoint=dict(type='MyCheckpointHook')),
        train_cfg=dict(type='MyLoop', max_iters=5)))
    enable_safe_checkpoints(own)
    assert own.default_hooks.checkpoint.type == 'MyCheckpointHook'
    assert own.train_cfg.type == 'MyLoop'
    off = Config(dict(custom_imports=dict(imports=['mmkd']),
                      default_hooks=dict(checkpoint=None)))
    enable_safe_checkpoints(off)
    assert off.default_hooks.checkpoint is None
