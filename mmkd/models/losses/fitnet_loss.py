"""FitNets hint loss."""
from typing import List, Union

import torch
import torch.nn.functional as F
from torch import nn

from mmkd.registry import MODELS


@MODELS.register_module()
class FitNetLoss(nn.Module):
    """Hint loss of FitNets (Romero et al., ICLR 2015), Eq. 3.

    ``L_HT = 1/2 ||u_h(x) - r(v_g(x))||^2`` between the teacher's hint
    ``u_h`` and the student's guided layer after the regressor ``r`` (an
    mmkd connector, e.g. :class:`ConvConnector`). As in the common
    re-implementations (CRD, mdistiller) the squared error is averaged over
    all elements (``reduction='mean'``), so the value does not grow with the
    feature size; the paper's 1/2 is folded into ``loss_weight``.

    Args:
        loss_weight (float): Weight of the loss.
    """

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, preds_S: Union[torch.Tensor, List[torch.Tensor]],
                preds_T: Union[torch.Tensor, List[torch.Tensor]]
                ) -> torch.Tensor:
        """
        Args:
            preds_S: Regressed student features (B, C, H, W), or a list.
            preds_T: Teacher hints of the same shapes (detached here).
        """
        if torch.is_tensor(preds_S):
            preds_S, preds_T = [preds_S], [preds_T]
        if len(preds_S) != len(preds_T):
            raise ValueError(f'FitNetLoss got {len(preds_S)} student and '
                             f'{len(preds_T)} teacher features')
        loss = 0
        for i, (s, t) in enumerate(zip(preds_S, preds_T)):
            if s.shape != t.shape:
                raise ValueError(
                    f'FitNetLoss stage {i}: student {tuple(s.shape)} and '
                    f'teacher {tuple(t.shape)} differ; add a connector that '
                    'maps the student to the teacher shape')
            loss = loss + F.mse_loss(s, t.detach())
        return self.loss_weight * loss
