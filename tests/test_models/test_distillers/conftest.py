import logging

import pytest
import torch
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope

from mmkd.registry import MODELS
from mmkd.testing.task_configs import pspnet_segmentor, save_cifar_teacher


@pytest.fixture(autouse=True, scope='module')
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def teacher_ckpt(tmp_path_factory):
    """A 5-class CIFAR ResNet-8 teacher checkpoint (random weights)."""
    return save_cifar_teacher(
        tmp_path_factory.mktemp('teacher') / 'teacher.pth')


@pytest.fixture(scope='module')
def seg_teacher_ckpt(tmp_path_factory):
    """A width-16 tiny PSPNet teacher checkpoint (random weights)."""
    init_default_scope('mmseg')
    torch.manual_seed(1)
    teacher = MODELS.build(pspnet_segmentor(16))
    path = tmp_path_factory.mktemp('seg_teacher') / 'teacher.pth'
    torch.save({'state_dict': teacher.state_dict()}, path)
    return str(path)


@pytest.fixture
def warnings():
    """Warnings of mmengine's current logger."""
    records = []

    class Handler(logging.Handler):

        def emit(self, record):
            records.append(record.getMessage())

    logger = MMLogger.get_current_instance()
    handler = Handler(level=logging.WARNING)
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)
