"""Shared pieces of the CUDA tests: the shipped classification configs of
every distiller kind, built with random teachers, and synthetic batches.

Every test module here is marked ``cuda`` and skipped without a CUDA
device; ``tools/gpu/check_gpu.sh`` runs them on a GPU machine.
"""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
#: One shipped classification config per distiller kind.
CONFIGS = dict(
    kd='configs/kd/kd_resnet34-resnet18_8xb32_in1k.py',
    dkd='configs/dkd/dkd_resnet32x4-resnet8x4_1xb128-240e_cifar100.py',
    reviewkd='configs/reviewkd/'
    'reviewkd_resnet32x4-resnet8x4_1xb128-240e_cifar100.py',
    frskd='configs/frskd/resnet18_cifar100.py',
)


def load_config(kind: str) -> Config:
    return Config.fromfile(osp.join(ROOT, CONFIGS[kind]))


@pytest.fixture(scope='session')
def random_teachers(tmp_path_factory):
    """``kind -> checkpoint`` of the config's teacher with random weights
    (seed 0), written once per session; ``None`` for self-distillation."""
    from mmkd.models.utils import build_task_model, load_model_config
    out = {}
    for kind in CONFIGS:
        teacher = load_config(kind).model.get('teacher')
        if teacher is None:
            out[kind] = None
            continue
        tcfg = load_model_config(teacher.config)
        init_default_scope('mmpretrain')
        torch.manual_seed(0)
        model = build_task_model(
            dict(tcfg.model, _scope_=tcfg.get('default_scope')))
        path = str(tmp_path_factory.mktemp(kind) / 'teacher.pth')
        torch.save({'state_dict': model.state_dict()}, path)
        out[kind] = path
    return out


def _build_distiller(kind: str, teachers: dict, **teacher_options):
    """``(cfg, distiller)`` of the kind's config, probe at 32x32, on CPU."""
    from mmkd.registry import MODELS
    cfg = load_config(kind)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    model_cfg = copy.deepcopy(cfg.model)
    if 'data_preprocessor' in cfg:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    if model_cfg.get('teacher') is not None:
        model_cfg.teacher.update(checkpoint=teachers[kind],
                                 **teacher_options)
    model_cfg.probe_input_shape = (3, 32, 32)
    torch.manual_seed(0)
    return cfg, MODELS.build(model_cfg)


def _batch(model, n: int = 8, size: int = 32, seed: int = 0) -> dict:
    """A raw batch (uint8-range images, labels of the student's classes)."""
    from mmpretrain.structures import DataSample
    g = torch.Generator().manual_seed(seed)
    classes = model.student.head.num_classes
    return dict(
        inputs=[
            torch.randint(0, 256, (3, size, size), generator=g).float()
            for _ in range(n)
        ],
        data_samples=[
            DataSample().set_gt_label(int(i * 37 % classes))
            for i in range(n)
        ])


@pytest.fixture
def make_distiller(random_teachers):
    """``make_distiller(kind, **teacher_options) -> (cfg, distiller)``."""
    return lambda kind, **options: _build_distiller(kind, random_teachers,
                                                    **options)


@pytest.fixture
def make_batch():
    """``make_batch(model, n=8, size=32, seed=0)``: a raw batch."""
    return _batch
