"""SKD pixel-wise distillation loss (per-pixel KL / cross-entropy)."""
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmkd.registry import MODELS


@MODELS.register_module()
class PixelWiseLoss(nn.Module):
    """Pixel-wise distillation of SKD: the paper's ``l_pi`` (Liu et al.,
    CVPR 2019 / TPAMI "Structured Knowledge Distillation for Dense
    Prediction", Sec. 3.1; docs/en/methods.md#skd-pixel-wise).

    Each spatial position of the ``(B, C, H, W)`` class logits is a
    ``C``-way distribution; the student's distribution is pulled towards the
    teacher's one at the logits' own resolution (no upsampling; the authors
    tap the 1/8-resolution logits, docs/en/methods.md#skd-tapped-tensors)::

        p = softmax(z / tau, dim=1)
        mode='kl':  l(b, h, w) = KL(p_t || p_s) = sum_c p_t (log p_t - log p_s)
        mode='ce':  l(b, h, w) = H(p_t, p_s)    = sum_c -p_t log p_s
        per image:  L_b = tau^2 * sum_{h,w} l(b, h, w) / (H * W)
        batch_reduction='sum':  loss = sum_b L_b        (authors' code)
        batch_reduction='mean': loss = mean_b L_b       (per-image average)

    Paper vs code (docs/en/methods.md#skd-paper-vs-code):

    * The official ``CriterionPixelWise`` computes the cross-entropy
      ``H(p_t, p_s) = KL(p_t || p_s) + H(p_t)`` (``mode='ce'``). The teacher
      entropy ``H(p_t)`` does not depend on the student, so both modes give
      the same gradient; ``'kl'`` (the default) is the divergence itself,
      0 when the student matches the teacher.
    * The code divides by ``H * W`` only, i.e. it **sums over the batch**
      (``batch_reduction='sum'``, the default, faithful to the run that gave
      the published numbers: batch 8 on one GPU). For a per-image average
      use ``batch_reduction='mean'`` (the loss then no longer grows with
      the batch size, so ``loss_weight`` must be multiplied by ``B`` to
      reproduce the code).
    * The code uses ``tau = 1``. For ``tau != 1`` the usual ``tau^2`` factor
      of Hinton et al. keeps the gradient scale (no effect at ``tau = 1``).

    The teacher logits are detached inside the loss.

    Args:
        tau (float): Temperature. Defaults to 1.0 (authors).
        mode (str): ``'kl'`` or ``'ce'``. Defaults to ``'kl'``.
        batch_reduction (str): ``'sum'`` (authors' code) or ``'mean'`` over
            the images of the batch. Defaults to ``'sum'``.
        loss_weight (float): Multiplier of the loss (the authors' run uses
            ``lambda_pi = 10``). Defaults to 1.0.
    """

    def __init__(self,
                 tau: float = 1.0,
                 mode: str = 'kl',
                 batch_reduction: str = 'sum',
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if tau <= 0:
            raise ValueError(f'PixelWiseLoss: tau must be positive, got {tau}')
        if mode not in ('kl', 'ce'):
            raise ValueError(
                f"PixelWiseLoss: mode must be 'kl' or 'ce', got {mode!r}")
        if batch_reduction not in ('sum', 'mean'):
            raise ValueError("PixelWiseLoss: batch_reduction must be 'sum' or "
                             f"'mean', got {batch_reduction!r}")
        self.tau = tau
        self.mode = mode
        self.batch_reduction = batch_reduction
        self.loss_weight = loss_weight

    def forward(self, preds_S: Tensor, preds_T: Tensor) -> Tensor:
        """Compute the loss.

        Args:
            preds_S (Tensor): Student logits ``(B, C, H, W)``.
            preds_T (Tensor): Teacher logits ``(B, C, H, W)`` (detached here).

        Returns:
            Tensor: Scalar loss, times ``loss_weight``.
        """
        if preds_S.dim() != 4:
            raise ValueError('PixelWiseLoss expects logits of shape '
                             f'(B, C, H, W), got {tuple(preds_S.shape)}')
        if preds_S.shape != preds_T.shape:
            raise ValueError(
                'PixelWiseLoss: preds_S and preds_T must have the same shape '
                '(tap the student and teacher logits at the same resolution; '
                f'no resizing is done), got {tuple(preds_S.shape)} and '
                f'{tuple(preds_T.shape)}')
        B, _, H, W = preds_S.shape
        T = self.tau
        log_p_s = F.log_softmax(preds_S / T, dim=1)
        log_p_t = F.log_softmax(preds_T.detach() / T, dim=1)
        p_t = log_p_t.exp()
        if self.mode == 'kl':
            # log_p_t is finite even where p_t underflows to 0, so 0 * finite
            # keeps the term at 0 (no NaN).
            per_pixel = (p_t * (log_p_t - log_p_s)).sum(dim=1)
        else:
            per_pixel = -(p_t * log_p_s).sum(dim=1)
        loss = per_pixel.sum() * T**2 / (H * W)
        if self.batch_reduction == 'mean':
            loss = loss / B
        return self.loss_weight * loss
