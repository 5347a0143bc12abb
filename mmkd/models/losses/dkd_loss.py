"""Decoupled knowledge distillation (DKD) loss."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmkd.registry import MODELS

#: Subtracted from the ground-truth class before the NCKD softmax, as the
#: authors' code does (``- 1000.0 * gt_mask``).
GT_MASK_OFFSET = 1000.0


@MODELS.register_module()
class DKDLoss(nn.Module):
    """Decoupled KD (Zhao et al., CVPR 2022), as the authors' ``dkd_loss``
    (megvii-research/mdistiller); equations in docs/en/methods.md#dkd.

    The classical KD loss is split at the ground-truth class ``g`` of each
    sample into a *target-class* part (TCKD, a binary KL between
    ``[p_g, 1 - p_g]`` of teacher and student) and a *non-target-class* part
    (NCKD, a KL over the ``K - 1`` other classes, renormalised), which are
    weighted independently. With ``p = softmax(z / T)``::

        b      = [p_g, sum_{k != g} p_k]                     # (B, 2)
        TCKD   = T^2 / B * sum_b KL(b_t || b_s)
        q      = softmax(z / T - 1000 * onehot(g))           # gt masked out
        NCKD   = T^2 / B * sum_b KL(q_t || q_s)
        loss   = loss_weight * (alpha * TCKD + beta * NCKD)

    As in the authors' code both terms are multiplied by ``T^2``, summed over
    classes and averaged over the batch, and the ground-truth class is
    removed from the NCKD softmax by subtracting 1000 from its (tempered)
    logit rather than by indexing. The binary probabilities are computed in
    log space (``logsumexp`` over the target / non-target classes), which is
    the same value as the authors' ``log(sum of probabilities)`` but stays
    finite when ``p_g`` underflows. The teacher logits are detached, so the
    loss trains the student only.

    The authors' CIFAR-100 settings are ``alpha = 1``, ``beta = 8``,
    ``T = 4`` (``beta`` differs for some teacher-student pairs), with the
    whole DKD term ramped up linearly over the first 20 epochs.

    Args:
        alpha (float): Weight of TCKD. Defaults to 1.0.
        beta (float): Weight of NCKD. Defaults to 8.0.
        tau (float): Temperature ``T``. Defaults to 4.0.
        loss_weight (float): Multiplier of the whole loss. Defaults to 1.0.
    """

    def __init__(self,
                 alpha: float = 1.0,
                 beta: float = 8.0,
                 tau: float = 4.0,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if tau <= 0:
            raise ValueError(f'DKDLoss: tau must be positive, got {tau}')
        if alpha < 0 or beta < 0:
            raise ValueError('DKDLoss: alpha and beta must be >= 0, got '
                             f'alpha={alpha}, beta={beta}')
        self.alpha = alpha
        self.beta = beta
        self.tau = tau
        self.loss_weight = loss_weight

    def forward(self,
                preds_S: Tensor,
                preds_T: Tensor,
                gt: Optional[Tensor] = None) -> Tensor:
        """Compute the loss.

        Args:
            preds_S (Tensor): Student logits ``(B, K)``.
            preds_T (Tensor): Teacher logits ``(B, K)`` (detached here).
            gt (Tensor): Class indices ``(B,)``; in a distiller config map
                it to the batch's ground truth: ``gt='gt_label'``.

        Returns:
            Tensor: Scalar loss, times ``loss_weight``.
        """
        self._check(preds_S, preds_T, gt)
        T = self.tau
        z_s = preds_S / T
        z_t = preds_T.detach() / T
        gt_mask = torch.zeros_like(z_s).scatter_(1, gt.long()[:, None], 1.)
        num = z_s.shape[0]

        tckd = F.kl_div(
            self._binary_log_probs(z_s, gt_mask),
            self._binary_log_probs(z_t, gt_mask),
            reduction='sum',
            log_target=True) * T**2 / num
        nckd = F.kl_div(
            F.log_softmax(z_s - GT_MASK_OFFSET * gt_mask, dim=1),
            F.softmax(z_t - GT_MASK_OFFSET * gt_mask, dim=1),
            reduction='sum') * T**2 / num
        return self.loss_weight * (self.alpha * tckd + self.beta * nckd)

    @staticmethod
    def _binary_log_probs(z: Tensor, gt_mask: Tensor) -> Tensor:
        """``log [p_g, 1 - p_g]`` ``(B, 2)`` of tempered logits ``z``."""
        log_all = torch.logsumexp(z, dim=1, keepdim=True)
        log_gt = (z * gt_mask).sum(1, keepdim=True)
        # -inf on the ground-truth class: logsumexp over the others only.
        log_other = torch.logsumexp(
            z.masked_fill(gt_mask.bool(), float('-inf')), dim=1, keepdim=True)
        return torch.cat([log_gt, log_other], dim=1) - log_all

    @staticmethod
    def _check(preds_S: Tensor, preds_T: Tensor, gt: Optional[Tensor]) -> None:
        if gt is None:
            raise ValueError(
                'DKDLoss needs the ground-truth classes: map its `gt` '
                "argument to the batch's labels in the config, e.g. "
                "inputs=dict(preds_S='s_logits', preds_T='t_logits', "
                "gt='gt_label')")
        if preds_S.dim() != 2 or preds_S.shape != preds_T.shape:
            raise ValueError(
                'DKDLoss expects student and teacher logits of the same '
                f'shape (B, K), got {tuple(preds_S.shape)} and '
                f'{tuple(preds_T.shape)}; tap the classifier outputs (e.g. '
                "'student.head.fc' and 'teacher.head.fc')")
        if preds_S.shape[0] == 0:
            raise ValueError('DKDLoss got an empty batch')
        if preds_S.shape[1] < 2:
            raise ValueError('DKDLoss needs at least 2 classes, got '
                             f'{preds_S.shape[1]}')
        if gt.dim() != 1 or gt.shape[0] != preds_S.shape[0]:
            raise ValueError(
                f'DKDLoss expects class indices of shape ({preds_S.shape[0]},'
                f') for logits {tuple(preds_S.shape)}, got ground truth of '
                f'shape {tuple(gt.shape)} (soft targets from Mixup/CutMix '
                'are not supported: the target class must be one index)')
        if gt.dtype.is_floating_point or gt.dtype == torch.bool:
            raise ValueError('DKDLoss expects integer class indices, got '
                             f'dtype {gt.dtype}')
        if gt.numel():
            lo, hi = torch.stack([gt.min(), gt.max()]).tolist()  # one sync
            if lo < 0 or hi >= preds_S.shape[1]:
                raise ValueError(
                    'DKDLoss: class indices must be in '
                    f'[0, {preds_S.shape[1]}), got min {lo}, max {hi}')
