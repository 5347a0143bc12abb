"""The CIRKD configs: one training iteration of each on tiny data (the
student and the projection head change, the teacher does not, the queues
receive the batch), the queues in the checkpoint and not in the converted
student, and a run killed and resumed that ends with the queues of an
uninterrupted one."""
import os
import os.path as osp
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from mmkd.testing import make_cityscapes
from mmkd.testing.task_configs import seg_config, seg_data, write

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CFG_DIR = osp.join(ROOT, 'configs', 'cirkd')
CITYSCAPES = [
    'cirkd_deeplabv3_r101-r18-d8_8xb2-40k_cityscapes-512x1024.py',
    'cirkd_deeplabv3-r101_pspnet-r18-d8_8xb2-40k_cityscapes-512x1024.py'
]
NUCLEI = 'cirkd_pspnet_r34-r18-d8_1xb8-450iter_stardist-64x64.py'
QUEUES = ('pixel_queue', 'pixel_queue_ptr', 'region_queue', 'region_queue_ptr')
PREFIX = 'connectors.cirkd_memory.'
# small queues for the tiny runs (the configs' own sizes are checked in
# test_config_sizes)
SMALL = ('pixel_memory_size=300, region_memory_size=60, '
         'pixel_contrast_size=20, region_contrast_size=5')


def save_random_teacher(task_cfg: str, out: str) -> str:
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from mmkd.models.utils import build_task_model
    cfg = Config.fromfile(task_cfg)
    init_default_scope(cfg.default_scope)
    torch.manual_seed(0)
    torch.save({'state_dict': build_task_model(cfg.model).state_dict()}, out)
    return out


def cityscapes_config(tmp_path, name: str) -> str:
    data = make_cityscapes(
        str(tmp_path / 'cityscapes'), num_train=2, num_val=1, size=(96, 64))
    teacher_cfg = seg_config(tmp_path / 'teacher.py', data, depth=18)
    teacher_ckpt = save_random_teacher(teacher_cfg,
                                       str(tmp_path / 'teacher.pth'))
    return write(
        tmp_path / 'cirkd_tiny.py', f"""
        _base_ = [{osp.join(CFG_DIR, name)!r}]
        """, seg_data(data), f"""
        model = dict(
            student=dict(pretrained=None,
                         data_preprocessor=dict(size=crop_size)),
            teacher=dict(config={teacher_cfg!r}, checkpoint={teacher_ckpt!r}),
            connectors=dict(cirkd_memory=dict({SMALL})),
            probe_input_shape=(3, 64, 64))
        train_cfg = dict(max_iters=1, val_interval=10)
        default_hooks = dict(logger=dict(interval=1),
                             checkpoint=dict(interval=1))
        """)


def nuclei_config(tmp_path) -> str:
    """The nuclei config over tiles written as the stardist converter
    writes them (grey 8-bit tiles, masks of 0/1), with a random teacher."""
    rng = np.random.default_rng(0)
    root = tmp_path / 'stardist'
    for split, n in (('train', 2), ('val', 1)):
        for d in ('img_dir', 'ann_dir'):
            os.makedirs(root / d / split)
        for i in range(n):
            mask = (rng.random((16, 16)) < 0.3).repeat(8, 0).repeat(8, 1)
            img = (20 + 40 * mask + rng.normal(0, 5, mask.shape)).clip(0, 78)
            Image.fromarray(img.astype(np.uint8)).save(root / 'img_dir' /
                                                       split / f'tile{i}.png')
            Image.fromarray(mask.astype(np.uint8)).save(root / 'ann_dir' /
                                                        split / f'tile{i}.png')
    teacher_cfg = osp.join(ROOT, 'configs', 'vanilla', 'stardist',
                           'pspnet_r34-d8_1xb8-900iter_stardist-64x64.py')
    teacher_ckpt = save_random_teacher(teacher_cfg,
                                       str(tmp_path / 'teacher.pth'))
    return write(
        tmp_path / 'cirkd_nuclei_tiny.py', f"""
        _base_ = [{osp.join(CFG_DIR, NUCLEI)!r}]
        data_root = {str(root)!r}
        train_dataloader = dict(batch_size=2, dataset=dict(
            data_root=data_root))
        val_dataloader = dict(dataset=dict(data_root=data_root))
        test_dataloader = val_dataloader
        model = dict(
            teacher=dict(checkpoint={teacher_ckpt!r}),
            connectors=dict(cirkd_memory=dict({SMALL})),
            probe_input_shape=(3, 64, 64))
        train_cfg = dict(max_iters=1, val_interval=10)
        default_hooks = dict(logger=dict(interval=1),
                             checkpoint=dict(interval=1))
        """)


def train_one_iteration(cfg_file: str, work_dir: str):
    from mmengine.config import Config
    from mmengine.runner import Runner
    cfg = Config.fromfile(cfg_file)
    cfg.work_dir = work_dir
    runner = Runner.from_cfg(cfg)
    model = runner.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    teacher = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    runner.train()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith('student.decode_head.conv_seg') for k in changed)
    assert any(k.startswith('student.backbone') for k in changed)
    assert any(k.startswith(PREFIX + 'project.0') for k in changed)
    for k in QUEUES:  # the batch entered the queues
        assert PREFIX + k in changed, k
    for k, v in model.teacher.state_dict().items():
        assert torch.equal(v, teacher[k]), k
    hub = runner.message_hub
    for key in ('loss_kd', 'loss_minibatch', 'loss_memory'):
        value = hub.get_scalar(f'train/distill.{key}').current()
        assert np.isfinite(value) and value > 0, key
    return runner, osp.join(work_dir, 'iter_1.pth')


@pytest.mark.slow
@pytest.mark.parametrize('name', CITYSCAPES)
def test_cityscapes_config_trains_one_iteration(tmp_path, name, load_tool):
    runner, ckpt = train_one_iteration(
        cityscapes_config(tmp_path, name), str(tmp_path / 'work'))
    # the queues are in the checkpoint, not in the converted student
    student_state_dict = load_tool('convert_to_student.py').student_state_dict
    state = torch.load(ckpt, map_location='cpu', weights_only=True)
    model = runner.model
    for k in QUEUES:
        assert torch.equal(state['state_dict'][PREFIX + k],
                           getattr(model.connectors.cirkd_memory, k))
    student = student_state_dict(state['state_dict'])
    assert student and not any('queue' in k or 'connectors' in k
                               for k in student)


@pytest.mark.slow
def test_nuclei_config_trains_one_iteration(tmp_path):
    train_one_iteration(nuclei_config(tmp_path), str(tmp_path / 'work'))


def built_config(tmp_path):
    """The DeepLabV3 config's distiller (tiny teacher, small queues) and
    its optimizer wrapper."""
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope

    from mmkd.registry import MODELS
    cfg = Config.fromfile(cityscapes_config(tmp_path, CITYSCAPES[0]))
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.train()
    return model, build_optim_wrapper(model, cfg.optim_wrapper)


def hand_made_batch(seed=0):
    """Two 64x64 crops with labels of 19 classes, the last rows
    ignored."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(2):
        sample = SegDataSample(
            metainfo=dict(img_shape=(64, 64), ori_shape=(64, 64)))
        label = torch.randint(0, 19, (1, 64, 64), generator=g)
        label[:, -8:] = 255
        sample.gt_sem_seg = PixelData(data=label)
        samples.append(sample)
    data = dict(
        inputs=[
            torch.randint(0, 256, (3, 64, 64), generator=g, dtype=torch.uint8)
            for _ in range(2)
        ],
        data_samples=samples)
    return data


def test_train_step_of_the_built_config(tmp_path, load_tool):
    """One ``train_step`` of the built config on a hand-made batch,
    without a Runner: the student and the projection head change, the
    teacher does not, the queues receive the batch."""
    model, ow = built_config(tmp_path)
    data = hand_made_batch()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    teacher = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    log = model.train_step(data, ow)
    for key in ('distill.loss_kd', 'distill.loss_minibatch',
                'distill.loss_memory'):
        assert torch.isfinite(log[key]) and log[key] > 0, key
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith('student.backbone') for k in changed)
    assert any(k.startswith(PREFIX + 'project.3') for k in changed)
    for k in QUEUES:
        assert PREFIX + k in changed, k
    for k, v in model.teacher.state_dict().items():
        assert torch.equal(v, teacher[k]), k
    # the converted student has no queue
    student = load_tool('convert_to_student.py').student_state_dict(after)
    assert student and not any('queue' in k for k in student)


def test_a_skipped_step_leaves_the_queues_as_they_were(tmp_path):
    """A step with a non-finite loss is skipped after the enqueue: the
    memory undoes its writes (slots and pointers), so every buffer is as
    before the step, and the guard's snapshot holds no copy of the
    queues."""
    model, ow = built_config(tmp_path)
    model.train_step(hand_made_batch(0), ow)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    memory = model.connectors['cirkd_memory']
    assert memory._undo_log is None  # a kept step keeps no log
    written = []
    model.distill_losses['loss_memory'].register_forward_hook(
        lambda *_: written.append(
            [b.clone() for b in memory.undo_log_buffers()]))
    model.distill_losses['loss_kd'].register_forward_hook(
        lambda module, inputs, out: out * float('nan'))
    log = model.train_step(hand_made_batch(1), ow)
    assert log['nonfinite.skipped'] == 1
    # the enqueue of the skipped step wrote slots and moved the pointers
    for old, new in zip(
        (before[PREFIX + k] for k in QUEUES[::2] + QUEUES[1::2]),
            written[0]):
        assert not torch.equal(old, new)
    after = model.state_dict()
    for k in before:
        assert torch.equal(before[k], after[k]), k
    sizes = [c.shape for c in model.guard.snapshot._copies]
    assert sizes and memory.pixel_queue.shape not in sizes
    assert memory.region_queue.shape not in sizes


def test_a_step_that_raises_leaves_no_undo_log(tmp_path):
    """An exception inside the step (here in a loss) propagates, and the
    memory stops recording its writes: no log grows after the failed
    step."""
    model, ow = built_config(tmp_path)
    memory = model.connectors['cirkd_memory']

    def fail(*_):
        raise RuntimeError('loss failed')

    handle = model.distill_losses['loss_kd'].register_forward_hook(fail)
    with pytest.raises(RuntimeError, match='loss failed'):
        model.train_step(hand_made_batch(0), ow)
    assert memory._undo_log is None
    handle.remove()
    model.train_step(hand_made_batch(1), ow)
    assert memory._undo_log is None


def test_config_sizes():
    """The configs' memory is the authors' (Cityscapes) or the nuclei
    setting's, and every contrast set fits its queue."""
    from mmengine.config import Config
    for name in CITYSCAPES + [NUCLEI]:
        mem = Config.fromfile(osp.join(CFG_DIR,
                                       name)).model.connectors['cirkd_memory']
        K = mem.num_classes
        assert mem.pixel_contrast_size == 4096 // K + 1
        assert mem.region_contrast_size == 1024 // K + 1
        assert mem.pixel_contrast_size <= mem.pixel_memory_size
        assert mem.region_contrast_size <= mem.region_memory_size
        if K == 19:
            assert (mem.pixel_memory_size, mem.region_memory_size) == (20000,
                                                                       2000)


def test_config_without_labels_fails_at_build(tmp_path):
    """A memory loss that no label map reaches fails when the model is
    built, saying what to add."""
    from mmengine.config import Config

    from mmkd.registry import MODELS
    cfg = Config.fromfile(cityscapes_config(tmp_path, CITYSCAPES[0]))
    cfg.model.losses.loss_memory.inputs.pop('gt')
    with pytest.raises(ValueError, match="map its `gt` argument"):
        MODELS.build(cfg.model)


def test_config_with_labels_of_another_task_fails_at_build(tmp_path):
    """A memory loss fed with class labels (``gt_label``, which a
    segmentor's data samples do not carry) fails when the model is built,
    not at the first step; the same config with ``gt_sem_seg`` builds, its
    queues untouched by the build-time probe."""
    from mmengine.config import Config

    from mmkd.registry import MODELS
    cfg = Config.fromfile(cityscapes_config(tmp_path, CITYSCAPES[0]))
    model = MODELS.build(cfg.model)
    memory = model.connectors.cirkd_memory
    assert not memory.pixel_queue_ptr.any()
    assert not memory.region_queue_ptr.any()
    cfg.model.losses.loss_memory.inputs.gt = 'gt_label'
    with pytest.raises(
            ValueError,
            match="loss 'loss_memory': 'gt_label' .* was requested, but the "
            r'student is a EncoderDecoder \(mmseg.*\), not an mmpretrain '
            'classifier'):
        MODELS.build(cfg.model)


def test_embeddings_no_projection_can_match_fail_at_build(tmp_path):
    """A teacher embedding of another resolution (the first backbone
    stage, output stride 4, against the student's 8): the 1x1 projection
    cannot match it, and the model does not build."""
    from mmengine.config import Config

    from mmkd.registry import MODELS
    cfg = Config.fromfile(cityscapes_config(tmp_path, CITYSCAPES[0]))
    cfg.model.taps.t_feat = dict(path='teacher.backbone', index=0)
    with pytest.raises(ValueError, match='cannot match them'):
        MODELS.build(cfg.model)


@pytest.mark.slow
def test_kill_and_resume_ends_with_the_same_queues(tmp_path):
    """tools/train.py, 5 iterations, checkpoints every 2: a run killed while
    writing iter_4 and resumed from iter_2 ends with the state (weights,
    queues, pointers, optimizer) of an uninterrupted one."""
    sys.path.insert(0, osp.join(ROOT, 'tests', 'test_tools'))
    try:
        from test_kill_resume import (assert_same_training_state,
                                      kill_while_writing, train)
    finally:
        sys.path.pop(0)
    cfg = cityscapes_config(tmp_path, CITYSCAPES[1])
    with open(cfg, 'a') as f:
        f.write('train_cfg = dict(max_iters=5, val_interval=10)\n'
                'randomness = dict(seed=0, deterministic=True)\n'
                'default_hooks = dict(checkpoint=dict(interval=2, '
                'max_keep_ckpts=1))\n')
    work_a, work_b = str(tmp_path / 'a'), str(tmp_path / 'b')
    train(cfg, work_a)
    kill_while_writing(cfg, work_b, 'iter_4.pth.partial')
    out = train(cfg, work_b, '--resume')
    assert 'resumed epoch: 0, iter: 2' in out
    final = assert_same_training_state(
        osp.join(work_a, 'iter_5.pth'), osp.join(work_b, 'iter_5.pth'))
    assert (final['state_dict'][PREFIX + 'pixel_queue_ptr'] > 0).any()
