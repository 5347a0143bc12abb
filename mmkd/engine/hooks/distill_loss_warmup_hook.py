"""Linear warm-up of distillation loss weights."""
from typing import Optional, Sequence

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import IterBasedTrainLoop

from mmkd.registry import HOOKS


@HOOKS.register_module()
class DistillLossWarmupHook(Hook):
    """Scale distillation losses by ``min(1, epoch / warmup_epochs)``.

    ReviewKD's CIFAR training (``train.py``) multiplies the feature loss by
    ``min(1, epoch / 20)`` with a 0-based epoch, so the first epoch has
    weight 0; this hook does the same for any method. MMEngine's
    ``runner.epoch`` is that 0-based index during an epoch's iterations
    (``EpochBasedTrainLoop`` increments it after ``after_train_epoch``), so
    with ``warmup=20`` the scale is 0 in the first epoch, ``k / 20`` in
    epoch ``k`` and 1 from the 21st epoch (index 20) on. With
    ``by_epoch=False`` the ramp is per iteration: ``min(1, iter /
    warmup_iters)``, 0 for the first iteration.

    ``offset`` is added to the 0-based counter: ``offset=1`` reproduces a
    1-based epoch, e.g. DKD's ``min(1, epoch / 20)`` in mdistiller, whose
    epochs count from 1 (scale 1/20 in the first epoch, 1 from the 20th).

    Args:
        warmup (int): Epochs (or iterations) of the ramp.
        losses (Sequence[str], optional): Names of the distiller's losses to
            scale (as in its config, e.g. ``'loss_hcl'``); all if None.
        by_epoch (bool): Ramp over epochs (default) or iterations.
        offset (int): Added to the 0-based epoch (iteration) before the
            division. Defaults to 0.
    """

    priority = 'NORMAL'

    def __init__(self,
                 warmup: int,
                 losses: Optional[Sequence[str]] = None,
                 by_epoch: bool = True,
                 offset: int = 0) -> None:
        if warmup <= 0:
            raise ValueError(f'warmup must be positive, got {warmup}')
        if offset < 0:
            raise ValueError(f'offset must be >= 0, got {offset}')
        self.offset = offset
        self.warmup = warmup
        self.losses = None if losses is None else list(losses)
        self.by_epoch = by_epoch

    def before_train(self, runner) -> None:
        model = self._distiller(runner)
        if self.by_epoch and isinstance(runner.train_loop, IterBasedTrainLoop):
            # Its runner.epoch stays 0: the scale would stay 0 for ever.
            raise ValueError(
                'DistillLossWarmupHook(by_epoch=True) needs an epoch-based '
                'train loop; with IterBasedTrainLoop set by_epoch=False and '
                'warmup=<iterations>')
        unknown = set(self.losses or []) - set(model.distill_losses)
        if unknown:
            raise ValueError(
                f'DistillLossWarmupHook: losses {sorted(unknown)} are not '
                f'losses of the distiller ({sorted(model.distill_losses)})')

    @staticmethod
    def _distiller(runner):
        model = runner.model
        if is_model_wrapper(model):
            model = model.module
        if not hasattr(model, 'loss_scales'):
            raise TypeError('DistillLossWarmupHook needs an mmkd Distiller '
                            f'model, got {type(model).__name__}')
        return model

    def scale(self, epoch: int, iteration: int) -> float:
        progress = epoch if self.by_epoch else iteration
        return min(1.0, (progress + self.offset) / self.warmup)

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch=None) -> None:
        model = self._distiller(runner)
        factor = self.scale(runner.epoch, runner.iter)
        for name in self.losses or model.distill_losses:
            model.loss_scales[name] = factor
