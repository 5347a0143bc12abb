"""DistillLossRampUpHook: FRSKD segmentation's delayed sigmoid ramp-up."""
import math
from types import SimpleNamespace

import numpy as np
import pytest
from torch import nn

from mmkd.engine.hooks import DistillLossRampUpHook
from mmkd.registry import HOOKS


def official_sigmoid_rampup(current, rampup_length):
    """segmentation/main.py of the FRSKD code, restated with numpy."""
    current = np.clip(current, 0.0, rampup_length)
    phase = 1.0 - current / rampup_length
    return float(np.exp(-5.0 * phase * phase))


def official_weight(epoch, warmup=40, num_epochs=60):
    if epoch < warmup:
        return 0.0
    return official_sigmoid_rampup(epoch + 1 - warmup, num_epochs - warmup)


def test_matches_the_official_epoch_schedule():
    hook = HOOKS.build(dict(type='DistillLossRampUpHook', start=40, length=20))
    for epoch in range(60):
        assert hook.scale(
            epoch, iteration=10**6) == pytest.approx(
                official_weight(epoch), abs=1e-12)
    assert hook.scale(39, 0) == 0.0
    assert hook.scale(40, 0) == pytest.approx(math.exp(-5 * 0.95**2))
    assert hook.scale(59, 0) == 1.0
    assert hook.scale(80, 0) == 1.0


def test_by_iteration_uses_the_iteration_counter():
    hook = DistillLossRampUpHook(start=100, length=50, by_epoch=False)
    assert hook.scale(epoch=99, iteration=99) == 0.0
    assert hook.scale(
        epoch=0,
        iteration=124) == pytest.approx(math.exp(-5 * (1 - 25 / 50)**2))
    assert hook.scale(epoch=0, iteration=149) == 1.0


class FakeDistiller(nn.Module):

    def __init__(self):
        super().__init__()
        self.distill_losses = nn.ModuleDict(
            dict(
                loss_kd=nn.Identity(),
                loss_at=nn.Identity(),
                loss_self_teacher_ce=nn.Identity()))
        self.loss_scales = {}


def test_scales_only_the_named_losses():
    model = FakeDistiller()
    runner = SimpleNamespace(model=model, epoch=0, iter=7, train_loop=None)
    hook = DistillLossRampUpHook(
        start=5, length=10, by_epoch=False, losses=['loss_kd', 'loss_at'])
    hook.before_train(runner)
    hook.before_train_iter(runner, batch_idx=0)
    expected = math.exp(-5 * (1 - 3 / 10)**2)
    assert model.loss_scales == pytest.approx(
        dict(loss_kd=expected, loss_at=expected))
    runner.iter = 2
    hook.before_train_iter(runner, batch_idx=0)
    assert model.loss_scales == dict(loss_kd=0.0, loss_at=0.0)


def test_unknown_loss_and_bad_arguments_raise():
    runner = SimpleNamespace(
        model=FakeDistiller(), epoch=0, iter=0, train_loop=None)
    with pytest.raises(ValueError, match='loss_fitnet'):
        DistillLossRampUpHook(
            start=1, length=2, losses=['loss_fitnet']).before_train(runner)
    with pytest.raises(ValueError, match='length'):
        DistillLossRampUpHook(start=1, length=0)
    with pytest.raises(ValueError, match='start'):
        DistillLossRampUpHook(start=-1, length=3)
