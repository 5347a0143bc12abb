"""PKD loss: feature imitation with the Pearson correlation coefficient."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmkd.registry import MODELS
from .feature_levels import Feats, compute_dtype, paired_levels

#: Added to the standard deviation before dividing, as the authors' code.
STD_EPS = 1e-6


@MODELS.register_module()
class PKDLoss(nn.Module):
    """PKD (Cao et al., NeurIPS 2022), as the authors'
    ``PKDLoss`` in MMRazor (``mmrazor/models/losses/pkd_loss.py``);
    equations in docs/en/methods.md#pkd.

    Every channel of a level ``(B, C, H, W)`` is standardised over the
    whole batch and its positions, then the two standardised maps are
    compared by half their mean squared error::

        z(f)[b, c, h, w] = (f - mean_c) / (std_c + 1e-6)   # over B * H * W,
                                                          # unbiased std
        L = sum_levels mean((z(f_s) - z(f_t))^2) / 2       # mean: B*C*H*W

    Per channel, ``mean((z_s - z_t)^2) / 2`` is ``1 - r`` with ``r`` the
    Pearson correlation of the two channels (up to the ``n / (n - 1)`` of
    the unbiased std and the epsilon), the paper's loss. The statistics are
    those of the whole batch (the code reshapes to ``(C, B * H * W)``), not
    of each image. The teacher side is detached, and the loss computes in
    float32 (float64 for float64 inputs) whatever the input precision.

    Student and teacher maps must have the same shape. The authors' code
    resizes the student map bilinearly to the teacher's size when the
    heights differ (``resize_stu=True``, the teacher's to the student's with
    ``False``); mmkd does that only when asked (``resize='student'`` or
    ``'teacher'``) and otherwise fails with a ``ValueError`` that names the
    level. The authors' configs compare maps of equal size.

    Authors' settings: FPN levels 0-3 of the neck, weight 6 (Faster R-CNN
    R-101 -> R-50) or 10 (RetinaNet and FCOS teachers -> RetinaNet R-50).

    Args:
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
        resize (str, optional): ``None`` (default, sizes must match),
            ``'student'`` or ``'teacher'``: the map resized (bilinear) to the
            other's size when they differ.
    """

    def __init__(self,
                 loss_weight: float = 1.0,
                 resize: Optional[str] = None) -> None:
        super().__init__()
        if resize not in (None, 'student', 'teacher'):
            raise ValueError("PKDLoss: resize must be None, 'student' or "
                             f"'teacher', got {resize!r}")
        self.loss_weight = loss_weight
        self.resize = resize

    @staticmethod
    def standardize(feat: Tensor) -> Tensor:
        """Zero mean, unit (unbiased) std per channel over ``B * H * W``."""
        mean = feat.mean(dim=(0, 2, 3), keepdim=True)
        std = feat.std(dim=(0, 2, 3), keepdim=True)
        return (feat - mean) / (std + STD_EPS)

    def forward(self, preds_S: Feats, preds_T: Feats) -> Tensor:
        """Compute the loss.

        Args:
            preds_S (Tensor | Sequence[Tensor]): Student maps
                ``(B, C, H, W)``, one per level.
            preds_T (Tensor | Sequence[Tensor]): Teacher maps of the same
                shapes (detached here).

        Returns:
            Tensor: Sum over levels, times ``loss_weight``.
        """
        if self.resize is not None:
            preds_S, preds_T = self._resized(preds_S, preds_T)
        levels = paired_levels('PKDLoss', preds_S, preds_T)
        loss = 0.
        with torch.autocast(levels[0][0].device.type, enabled=False):
            for i, (s, t) in enumerate(levels):
                B, _, H, W = s.shape
                if B * H * W < 2:
                    raise ValueError(
                        f'PKDLoss level {i}: a {H}x{W} map in a batch of {B} '
                        'gives one value per channel, and its standard '
                        'deviation is undefined; train with at least 2 images '
                        'per batch (per process) or drop this level')
                dtype = compute_dtype(s)
                z_s = self.standardize(s.to(dtype))
                z_t = self.standardize(t.detach().to(dtype))
                loss = loss + F.mse_loss(z_s, z_t) / 2
        return self.loss_weight * loss

    def _resized(self, preds_S: Feats, preds_T: Feats):
        """Resize one side to the other's size, level by level."""
        single = isinstance(preds_S, Tensor) and isinstance(preds_T, Tensor)
        feats_s = [preds_S] if isinstance(preds_S, Tensor) else list(preds_S)
        feats_t = [preds_T] if isinstance(preds_T, Tensor) else list(preds_T)
        for i, (s, t) in enumerate(zip(feats_s, feats_t)):
            if s.dim() != 4 or t.dim() != 4 or s.shape[2:] == t.shape[2:]:
                continue  # bad ranks are reported by paired_levels
            if self.resize == 'student':
                feats_s[i] = F.interpolate(s, t.shape[2:], mode='bilinear')
            else:
                feats_t[i] = F.interpolate(t, s.shape[2:], mode='bilinear')
        if single:
            return feats_s[0], feats_t[0]
        return feats_s, feats_t
