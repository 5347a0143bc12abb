"""Hierarchical context loss (HCL) of ReviewKD."""
from typing import List, Sequence, Union

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmkd.registry import MODELS


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

    The teacher (target) side is detached.

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
        loss = F.mse_loss(fs, ft, reduction='mean')
        cnt = 1.0
        tot = 1.0
        for lv in self.levels:
            if lv >= h:
                continue
            cnt /= 2.0
            loss = loss + cnt * F.mse_loss(
                F.adaptive_avg_pool2d(fs, (lv, lv)),
                F.adaptive_avg_pool2d(ft, (lv, lv)),
                reduction='mean')
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
            loss = loss + self._stage_loss(fs, ft.detach())
        return self.loss_weight * loss
