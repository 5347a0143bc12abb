"""Attention-transfer loss (Zagoruyko & Komodakis), as FRSKD codes it."""
from typing import List, Sequence, Union

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmkd.registry import MODELS

Feats = Union[Tensor, Sequence[Tensor]]


@MODELS.register_module()
class ATLoss(nn.Module):
    """Attention transfer as FRSKD's ``Attention.at_loss``
    (docs/en/methods.md#at).

    FRSKD paper Sec. 3.2, the feature-distillation term, which is attention
    transfer (Zagoruyko & Komodakis, ICLR 2017, Eq. 2) with ``p = 2``. For
    one stage with maps ``f`` of shape ``(B, C, H, W)``::

        a(f) = normalize(mean_c(f ** p).view(B, H * W), dim=1, eps=1e-12)
        L = mean((a(f_s) - a(f_t)) ** 2)        # mean over B * H * W

    and the stages are **summed**. Code vs. paper: the paper writes a
    (squared) L2 distance of normalised attention maps; the code takes the
    *mean* of the squared difference over ``B * H * W`` (so its scale depends
    on the map size) and averages (not sums) over channels. The code is
    followed. Student and target channel counts may differ (channels are
    averaged out); batch and spatial sizes must match. The target side
    (``preds_T``) is detached.

    Args:
        p (float): Power applied to the features. Defaults to 2.
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
    """

    def __init__(self, p: float = 2, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.p = p
        self.loss_weight = loss_weight

    def attention(self, f: Tensor) -> Tensor:
        """Normalised spatial attention ``(B, H*W)`` of ``(B, C, H, W)``."""
        return F.normalize(f.pow(self.p).mean(1).flatten(1), dim=1)

    def forward(self, preds_S: Feats, preds_T: Feats) -> Tensor:
        """Compute the loss.

        Args:
            preds_S (Tensor | Sequence[Tensor]): Student maps
                ``(B, C_s, H, W)``, one per stage.
            preds_T (Tensor | Sequence[Tensor]): Target maps
                ``(B, C_t, H, W)`` (detached), same number of stages.

        Returns:
            Tensor: Sum over stages, times ``loss_weight``.
        """
        feats_s = self._as_list(preds_S, 'preds_S')
        feats_t = self._as_list(preds_T, 'preds_T')
        if len(feats_s) != len(feats_t):
            raise ValueError(f'ATLoss: got {len(feats_s)} student stages and '
                             f'{len(feats_t)} target stages')
        loss = 0.
        for i, (fs, ft) in enumerate(zip(feats_s, feats_t)):
            if fs.dim() != 4 or ft.dim() != 4:
                raise ValueError(f'ATLoss: stage {i} needs (B, C, H, W) maps,'
                                 f' got {tuple(fs.shape)} and '
                                 f'{tuple(ft.shape)}')
            if fs.shape[0] != ft.shape[0] or fs.shape[2:] != ft.shape[2:]:
                raise ValueError(
                    f'ATLoss: stage {i} batch and spatial sizes must match, '
                    f'got preds_S {tuple(fs.shape)} and preds_T '
                    f'{tuple(ft.shape)}')
            diff = self.attention(fs) - self.attention(ft.detach())
            loss = loss + diff.pow(2).mean()
        return self.loss_weight * loss

    @staticmethod
    def _as_list(x: Feats, name: str) -> List[Tensor]:
        if isinstance(x, Tensor):
            return [x]
        if isinstance(x, (list, tuple)) and len(x) > 0:
            return list(x)
        raise ValueError(f'ATLoss: {name} must be a tensor or a non-empty '
                         f'list of tensors, got {type(x).__name__}')
