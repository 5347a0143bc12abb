"""Hierarchical context loss (HCL) of ReviewKD."""
from typing import List, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmkd.registry import MODELS
from ..utils.memory_format import global_avg_pool, is_channels_last


@MODELS.register_module()
class HCLLoss(nn.Module):
    """Hierarchical context loss of ReviewKD (Chen et al., CVPR 2021).

    Paper Sec. 3.4 (Fig. 3(b)): the distance ``D`` of Eq. 6 between a
    student map and a teacher map is an MSE over a spatial pyramid of
    adaptive average pools. As the official ``hcl`` computes it (identical in
    the CIFAR, ImageNet and Detection code), for one stage with maps of
    height ``h``::

        loss = mse(fs, ft); cnt = tot = 1
        for l in levels:                 # (4, 2, 1)
            if l >= h: continue          # skip pools not smaller than the map
            cnt /= 2                     # 1/2, 1/4, 1/8 over the *used* levels
            loss += cnt * mse(pool_l(fs), pool_l(ft)); tot += cnt
        L_stage = loss / tot

    and the stages are **summed** (not averaged). ``mse`` is the mean over
    all elements. E.g. h >= 5: weights {1, 1/2, 1/4, 1/8} / 1.875; h = 4:
    {1, 1/2, 1/4} / 1.75; h = 2: {1, 1/2} / 1.5; h = 1 (pooled): plain MSE.

    Non-square maps: like the authors, the skip test compares ``l`` with the
    *height* only. It matters only when one side is > l and the other
    <= l (never for the square CIFAR/ImageNet maps or for FPN levels of
    ordinary detection inputs); then ``adaptive_avg_pool2d`` to (l, l)
    repeats values along the short side, which is still a valid (weighted)
    context term.

    The teacher (target) side is detached. Memory format: the teacher map
    is copied to the student map's format (contiguous or channels-last) when
    the two differ, and on channels-last maps the MSE and the global pool
    run on the ``(N, H, W, C)`` views; the values are the same, and the
    gradient keeps the student map's format (a mixed-format gradient makes
    the backward of the layer that produced the map several times slower on
    CPU).

    Args:
        levels (Sequence[int]): Pooled sizes, in the order their weights
            halve. Defaults to (4, 2, 1).
        loss_weight (float): Weight of the total loss. Defaults to 1.0.
    """

    def __init__(self,
                 levels: Sequence[int] = (4, 2, 1),
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        levels = tuple(levels)
        if not all(isinstance(lv, int) and lv > 0 for lv in levels):
            raise ValueError(f'levels must be positive ints, got {levels}')
        self.levels = levels
        self.loss_weight = loss_weight

    def _stage_loss(self, fs: Tensor, ft: Tensor) -> Tensor:
        h = fs.shape[2]
        loss = _mse(fs, ft)
        cnt = 1.0
        tot = 1.0
        for lv in self.levels:
            if lv >= h:
                continue
            cnt /= 2.0
            loss = loss + cnt * _mse(_pool(fs, lv), _pool(ft, lv))
            tot += cnt
        return loss / tot

    def forward(self, preds_S: Union[Tensor, List[Tensor]],
                preds_T: Union[Tensor, List[Tensor]]) -> Tensor:
        """Compute the loss.

        Args:
            preds_S (Tensor | list[Tensor]): Student (review path) maps, each
                (N, C, H, W).
            preds_T (Tensor | list[Tensor]): Teacher maps, same shapes.

        Returns:
            Tensor: Scalar, the sum over stages times ``loss_weight``.
        """
        single_S, single_T = isinstance(preds_S, Tensor), isinstance(
            preds_T, Tensor)
        if single_S != single_T:
            raise ValueError('preds_S and preds_T must both be tensors or '
                             'both be lists of tensors')
        if single_S:
            preds_S, preds_T = [preds_S], [preds_T]
        if len(preds_S) != len(preds_T):
            raise ValueError(f'got {len(preds_S)} student and '
                             f'{len(preds_T)} teacher stages')
        if len(preds_S) == 0:
            raise ValueError('HCLLoss needs at least one stage')
        loss = 0.
        for k, (fs, ft) in enumerate(zip(preds_S, preds_T)):
            if fs.dim() != 4 or fs.shape != ft.shape:
                raise ValueError(
                    f'stage {k}: student {tuple(fs.shape)} and teacher '
                    f'{tuple(ft.shape)} must be equal (N, C, H, W) shapes')
            loss = loss + self._stage_loss(fs, _in_layout_of(ft.detach(), fs))
        return self.loss_weight * loss


def _mse(a: Tensor, b: Tensor) -> Tensor:
    """``F.mse_loss(a, b)`` (mean over all elements); on channels-last
    maps over their ``(N, H, W, C)`` views, so that the gradient is
    channels-last too."""
    if is_channels_last(a) and is_channels_last(b):
        a, b = a.permute(0, 2, 3, 1), b.permute(0, 2, 3, 1)
    return F.mse_loss(a, b, reduction='mean')


def _pool(x: Tensor, size: int) -> Tensor:
    """``adaptive_avg_pool2d(x, (size, size))``; for ``size == 1`` on a
    channels-last map the spatial mean of its ``(N, H, W, C)`` view, shape
    (N, C) (the same values; the gradient stays channels-last)."""
    if size == 1 and is_channels_last(x):
        return global_avg_pool(x)
    return F.adaptive_avg_pool2d(x, (size, size))


def _in_layout_of(t: Tensor, ref: Tensor) -> Tensor:
    """``t`` in the memory format of ``ref`` (channels-last or
    contiguous): ``t`` itself when it already has it, else a copy."""
    if ref.is_contiguous():
        return t.contiguous()
    if ref.is_contiguous(memory_format=torch.channels_last):
        return t.contiguous(memory_format=torch.channels_last)
    return t
