"""Hinton knowledge-distillation loss (KL between softened predictions)."""
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmkd.registry import MODELS


@MODELS.register_module()
class KDLoss(nn.Module):
    """Hinton KD loss as FRSKD's ``DistillKL`` (docs/en/methods.md#kd).

    FRSKD paper Sec. 3.2, the soft-label distillation term (Hinton et al.
    2015) with temperature ``T``: ``KL(p_t || p_s) * T^2`` where
    ``p = softmax(logits / T)``. As coded::

        loss = kl_div(log_softmax(s / T), softmax(t / T).detach(),
                      reduction='sum') * T^2 / B

    i.e. the KL divergence summed over classes and averaged over the ``B``
    samples. The target side ``preds_T`` (teacher or self-teacher) is
    detached, so the loss only trains the student.

    Dense logits ``(B, K, H, W)`` (e.g. segmentation) are treated as
    ``B * H * W`` samples: the KL is summed over the ``K`` classes (dim 1) and
    averaged over ``B * H * W`` pixels, which is FRSKD's segmentation pixel
    KD (``sum / (B * H * W)``; that code uses ``tau=1``).

    Args:
        tau (float): Temperature ``T``. Defaults to 4.0 (FRSKD default).
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
    """

    def __init__(self, tau: float = 4.0, loss_weight: float = 1.0) -> None:
        super().__init__()
        if tau <= 0:
            raise ValueError(f'tau must be positive, got {tau}')
        self.tau = tau
        self.loss_weight = loss_weight

    def forward(self, preds_S: Tensor, preds_T: Tensor) -> Tensor:
        """Compute the loss.

        Args:
            preds_S (Tensor): Student logits ``(B, K)`` or ``(B, K, H, W)``.
            preds_T (Tensor): Target logits of the same shape (detached).

        Returns:
            Tensor: Scalar loss, times ``loss_weight``.
        """
        if preds_S.shape != preds_T.shape:
            raise ValueError('KDLoss: preds_S and preds_T must have the same '
                             f'shape, got {tuple(preds_S.shape)} and '
                             f'{tuple(preds_T.shape)}')
        if preds_S.dim() not in (2, 4):
            raise ValueError('KDLoss expects logits of shape (B, K) or '
                             f'(B, K, H, W), got {tuple(preds_S.shape)}')
        T = self.tau
        log_p_s = F.log_softmax(preds_S / T, dim=1)
        p_t = F.softmax(preds_T.detach() / T, dim=1)
        num_samples = preds_S.numel() // preds_S.shape[1]
        loss = F.kl_div(log_p_s, p_t, reduction='sum') * T**2 / num_samples
        return self.loss_weight * loss
