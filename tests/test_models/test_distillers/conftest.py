import pytest
import torch

from mmkd.testing.task_configs import save_cifar_teacher


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
