"""MGD's generation loss."""
from typing import List, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmkd.registry import MODELS

Feats = Union[Tensor, List[Tensor]]


@MODELS.register_module()
class MGDLoss(nn.Module):
    """Masked Generative Distillation (Yang et al., ECCV 2022), Sec. 3.

    The squared error between the features generated from the masked student
    (:class:`MGDConnector`) and the teacher's, summed over channels,
    positions and levels and divided by the batch size, as the authors'
    ``get_dis_loss`` (``MSELoss(reduction='sum') / N``, times
    ``alpha_mgd``)::

        L = loss_weight * alpha * sum_l sum_{n,c,h,w} (G_l - T_l)^2 / N

    The teacher's features are detached here. The loss is computed in at
    least float32 (bfloat16/float16 inputs are cast). Equations:
    docs/en/methods.md#mgd.

    Args:
        alpha (float): alpha of the paper (``alpha_mgd``); the authors' 7e-5
            (classification), 2e-5 (one-stage detectors, SOLO,
            segmentation), 5e-7 (two-stage detectors). No default: the sum
            reduction makes the scale depend on the feature size.
        loss_weight (float): An extra multiplier (1 in the papers' setting).
    """

    def __init__(self, alpha: float, loss_weight: float = 1.0) -> None:
        super().__init__()
        if alpha < 0:
            raise ValueError(f'MGDLoss: alpha must be >= 0, got {alpha}')
        self.alpha = float(alpha)
        self.loss_weight = float(loss_weight)

    def forward(self, preds_S: Feats, preds_T: Feats) -> Tensor:
        """
        Args:
            preds_S (Tensor | list[Tensor]): Generated features
                (N, C, H, W), the output of :class:`MGDConnector`.
            preds_T (Tensor | list[Tensor]): Teacher features, same shapes.

        Returns:
            Tensor: The scalar loss.
        """
        if torch.is_tensor(preds_S) != torch.is_tensor(preds_T):
            raise ValueError(
                'MGDLoss got one tensor on one side and a list on the '
                'other: map preds_S and preds_T to the same number of '
                'levels')
        if torch.is_tensor(preds_S):
            preds_S, preds_T = [preds_S], [preds_T]
        if len(preds_S) != len(preds_T) or not preds_S:
            raise ValueError(
                f'MGDLoss got {len(preds_S)} student and {len(preds_T)} '
                'teacher features: map preds_S and preds_T to the same '
                'levels (the MGDConnector has one output per input level)')
        loss = 0.
        for i, (s, t) in enumerate(zip(preds_S, preds_T)):
            if s.dim() != 4 or s.shape != t.shape:
                raise ValueError(
                    f'MGDLoss level {i}: the generated feature '
                    f'{tuple(s.shape)} and the teacher feature '
                    f'{tuple(t.shape)} must both be (N, C, H, W) and equal; '
                    'feed preds_S from an MGDConnector whose `targets` are '
                    'the taps given as preds_T')
            dtype = torch.promote_types(s.dtype, torch.float32)
            loss = loss + F.mse_loss(
                s.to(dtype), t.detach().to(dtype),
                reduction='sum') / s.shape[0]
        return self.loss_weight * self.alpha * loss
