"""Teacher building: strict/non-strict loading, relative config paths,
test without the teacher's checkpoint."""
import logging
import os.path as osp
import textwrap

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger

from mmkd.models.utils import build_teacher
from mmkd.utils import resolve_teacher_configs

MODEL = dict(
    _scope_='mmpretrain',
    type='ImageClassifier',
    backbone=dict(type='ResNet', depth=18, num_stages=4, out_indices=(3, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=5, in_channels=512,
              loss=dict(type='CrossEntropyLoss')))


class ListHandler(logging.Handler):
    """Keeps the messages MMEngine's logger emits."""

    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def saved_checkpoint(path, num_classes=5, extra=False):
    from mmkd.models.utils import build_task_model
    torch.manual_seed(1)
    model = build_task_model(dict(MODEL, head=dict(
        MODEL['head'], num_classes=num_classes)))
    state = model.state_dict()
    if extra:
        state['ema.extra'] = torch.zeros(3)
    torch.save(dict(state_dict=state, meta={}), path)
    return str(path), state


def test_strict_is_default_and_names_the_way_out(tmp_path):
    ckpt, _ = saved_checkpoint(tmp_path / 't.pth', num_classes=7, extra=True)
    with pytest.raises(ValueError) as err:
        build_teacher(model=MODEL, checkpoint=ckpt)
    msg = str(err.value)
    assert 'unexpected keys: ema.extra' in msg
    assert 'head.fc.weight (7, 512) vs (5, 512)' in msg
    assert 'strict=False' in msg


def test_non_strict_loads_what_fits_and_logs_the_rest(tmp_path):
    ckpt, state = saved_checkpoint(tmp_path / 't.pth', num_classes=7,
                                   extra=True)
    logger = MMLogger.get_current_instance()
    handler = ListHandler()
    logger.addHandler(handler)
    try:
        teacher = build_teacher(model=MODEL, checkpoint=ckpt, strict=False)
    finally:
        logger.removeHandler(handler)
    own = teacher.state_dict()
    # every backbone weight comes from the checkpoint ...
    for key in ('backbone.conv1.weight', 'backbone.layer4.1.bn2.running_var'):
        assert torch.equal(own[key], state[key])
    # ... the classifier of another size does not
    assert own['head.fc.weight'].shape == (5, 512)
    text = '\n'.join(handler.messages)
    assert 'ema.extra' in text and 'head.fc.weight' in text
    assert 'strict=False: loaded the' in text
    assert all(not p.requires_grad for p in teacher.parameters())


def test_fp16_teacher_on_cpu_fails_at_build(tmp_path):
    if torch.cuda.is_available():
        pytest.skip('the error is for machines without CUDA')
    ckpt, _ = saved_checkpoint(tmp_path / 't.pth')
    with pytest.raises(ValueError, match="precision='fp16' needs CUDA"):
        build_teacher(model=MODEL, checkpoint=ckpt, precision='fp16')
    with pytest.raises(ValueError, match='is not one of'):
        build_teacher(model=MODEL, checkpoint=ckpt, precision='int8')


def test_load_checkpoint_false_needs_no_file():
    teacher = build_teacher(model=MODEL, checkpoint='/nonexistent/t.pth',
                            load_checkpoint=False)
    assert all(not p.requires_grad for p in teacher.parameters())
    with pytest.raises(FileNotFoundError, match='does not exist'):
        build_teacher(model=MODEL, checkpoint='/nonexistent/t.pth')


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_relative_teacher_config_resolved_from_the_file_naming_it(
        tmp_path, monkeypatch):
    teacher_cfg = write(tmp_path / 'base' / 'nets' / 'teacher.py',
                        f'model = {MODEL!r}\n')
    # the teacher is named in a _base_ file, relative to that file
    write(tmp_path / 'base' / 'distill_base.py', """
        model = dict(type='Distiller',
                     teacher=dict(config='nets/teacher.py',
                                  checkpoint='t.pth'))
        """)
    cfg_file = write(tmp_path / 'user' / 'my_distill.py', """
        _base_ = ['../base/distill_base.py']
        """)
    monkeypatch.chdir(tmp_path)  # the working directory has no nets/
    cfg = Config.fromfile(cfg_file)
    resolve_teacher_configs(cfg)
    assert cfg.model.teacher.config == osp.normpath(teacher_cfg)

    # named in the top file, relative to it
    cfg_file = write(tmp_path / 'base' / 'top.py', """
        model = dict(type='Distiller',
                     teacher=dict(config='nets/teacher.py',
                                  checkpoint='t.pth'))
        """)
    cfg = Config.fromfile(cfg_file)
    resolve_teacher_configs(cfg)
    assert cfg.model.teacher.config == osp.normpath(teacher_cfg)


def test_missing_relative_teacher_config_lists_every_place(
        tmp_path, monkeypatch):
    write(tmp_path / 'base' / 'distill_base.py', """
        model = dict(type='Distiller',
                     teacher=dict(config='nets/missing.py',
                                  checkpoint='t.pth'))
        """)
    cfg_file = write(tmp_path / 'user' / 'my_distill.py', """
        _base_ = ['../base/distill_base.py']
        """)
    work = tmp_path / 'cwd'
    work.mkdir()
    monkeypatch.chdir(work)
    cfg = Config.fromfile(cfg_file)
    with pytest.raises(FileNotFoundError) as err:
        resolve_teacher_configs(cfg)
    msg = str(err.value)
    for where in (tmp_path / 'base', tmp_path / 'user', work):
        assert str(where / 'nets' / 'missing.py') in msg
    # the file that names it comes first
    assert msg.index(str(tmp_path / 'base')) < msg.index(
        str(tmp_path / 'user'))


def test_package_and_absolute_paths_untouched(tmp_path):
    for path in ('mmdet::faster_rcnn/faster-rcnn_r101_fpn_1x_coco.py',
                 str(tmp_path / 'abs.py')):
        cfg = Config(dict(model=dict(teacher=dict(config=path))))
        resolve_teacher_configs(cfg)
        assert cfg.model.teacher.config == path
