"""Delayed sigmoid-shaped ramp-up of distillation loss weights."""
import math
from typing import Optional, Sequence

from mmkd.registry import HOOKS
from .distill_loss_warmup_hook import DistillLossWarmupHook


@HOOKS.register_module()
class DistillLossRampUpHook(DistillLossWarmupHook):
    """Switch distillation losses off, then ramp them up as
    ``exp(-5 (1 - t)^2)``.

    FRSKD's segmentation training (``segmentation/main.py``,
    docs/en/methods.md#frskd-segmentation)
    trains with the distillation weights at 0 for the first ``warmup``
    epochs (40 of 60) and then multiplies them by the "sigmoid" ramp-up of
    the mean-teacher code, ``sigmoid_rampup(epoch + 1 - warmup, length)``::

        t = clip((progress + 1 - start) / length, 0, 1)
        scale = 0                         if progress < start
                exp(-5 * (1 - t) ** 2)    otherwise

    with ``progress`` the 0-based epoch (``by_epoch=True``, the official
    setting with ``start=40, length=20``) or iteration. The scale is set
    before every iteration on the distiller's ``loss_scales`` (the losses
    are still computed, times 0, while off).

    Args:
        start (int): First epoch (iteration) with a non-zero weight.
        length (int): Epochs (iterations) of the ramp.
        losses (Sequence[str], optional): Names of the distiller's losses to
            scale; all if None.
        by_epoch (bool): Count epochs (default) or iterations.
    """

    def __init__(self,
                 start: int,
                 length: int,
                 losses: Optional[Sequence[str]] = None,
                 by_epoch: bool = True) -> None:
        if start < 0:
            raise ValueError(f'start must be >= 0, got {start}')
        if length <= 0:
            raise ValueError(f'length must be positive, got {length}')
        self.start = start
        self.length = length
        self.losses = None if losses is None else list(losses)
        self.by_epoch = by_epoch

    def scale(self, epoch: int, iteration: int) -> float:
        progress = epoch if self.by_epoch else iteration
        if progress < self.start:
            return 0.0
        t = min(1.0, max(0.0, (progress + 1 - self.start) / self.length))
        return float(math.exp(-5.0 * (1.0 - t)**2))
