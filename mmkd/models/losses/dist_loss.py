"""DIST loss: inter- and intra-class Pearson correlation of predictions."""
import torch
import torch.nn as nn
from torch import Tensor

from mmkd.registry import MODELS
from .feature_levels import compute_dtype

#: Added to the product of the norms in the cosine similarity, as the
#: authors' code.
COSINE_EPS = 1e-8


def pearson_rows(a: Tensor, b: Tensor) -> Tensor:
    """Pearson correlation of the rows of ``a`` and ``b`` ``(N, M)``: the
    cosine similarity of the centred rows, ``eps`` added to the product of
    the norms. Returns ``(N,)``."""
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + COSINE_EPS)


@MODELS.register_module()
class DISTLoss(nn.Module):
    """DIST (Huang et al., NeurIPS 2022), as the authors' ``DIST``
    (hunto/image_classification_sota ``lib/models/losses/dist_kd.py`` and
    hunto/DIST_KD ``segmentation/losses/dist_kd.py``); equations in
    docs/en/methods.md#dist.

    With ``Y = softmax(Z / T)`` row-wise, ``Z`` the ``(N, K)`` logits::

        inter = 1 - mean_n  rho(Y_s[n, :], Y_t[n, :])   # per sample
        intra = 1 - mean_k  rho(Y_s[:, k], Y_t[:, k])   # per class
        L = T^2 * (beta * inter + gamma * intra)

    where ``rho`` is the Pearson correlation, computed as the cosine
    similarity of the centred vectors with ``1e-8`` added to the product of
    their norms (the code's ``pearson_correlation``). The paper writes
    ``d_p(u, v) = 1 - rho(u, v)``; the code multiplies both terms by
    ``T^2`` (the segmentation code has no temperature: ``T = 1``).

    Dense logits ``(B, K, H, W)`` are treated as in the authors'
    segmentation code: every pixel is a sample, ``(B * H * W, K)`` rows,
    so the intra-class term correlates each class over all pixels of the
    batch. The teacher side is detached, and the loss computes in float32
    (float64 for float64 inputs) whatever the input precision.

    Authors' settings: ``beta = gamma = 1``; ImageNet ``T = 1``, CIFAR-100
    ``T = 4``, both with the DIST term weighted 2 (``kd_loss_weight``);
    Cityscapes ``T = 1``, weight 1 on the main and 0.4 on the auxiliary
    logits.

    Args:
        beta (float): Weight of the inter-class term. Defaults to 1.0.
        gamma (float): Weight of the intra-class term. Defaults to 1.0.
        tau (float): Temperature ``T``. Defaults to 1.0.
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
    """

    def __init__(self,
                 beta: float = 1.0,
                 gamma: float = 1.0,
                 tau: float = 1.0,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if tau <= 0:
            raise ValueError(f'DISTLoss: tau must be positive, got {tau}')
        self.beta = beta
        self.gamma = gamma
        self.tau = tau
        self.loss_weight = loss_weight

    def forward(self, preds_S: Tensor, preds_T: Tensor) -> Tensor:
        """Compute the loss.

        Args:
            preds_S (Tensor): Student logits ``(B, K)`` or ``(B, K, H, W)``.
            preds_T (Tensor): Teacher logits of the same shape (detached).

        Returns:
            Tensor: Scalar loss, times ``loss_weight``.
        """
        if not isinstance(preds_S, Tensor) or not isinstance(preds_T, Tensor):
            raise ValueError('DISTLoss takes one tensor of logits per side, '
                             f'got {type(preds_S).__name__} and '
                             f'{type(preds_T).__name__}; use one loss per '
                             'pair of logits (e.g. main and auxiliary head)')
        if preds_S.shape != preds_T.shape:
            raise ValueError(
                'DISTLoss: student and teacher logits must have the same '
                f'shape, got {tuple(preds_S.shape)} and '
                f'{tuple(preds_T.shape)}; tap the classifiers (e.g. '
                "'student.head.fc') or both decode heads' conv_seg, which "
                'give the same classes at the same resolution')
        if preds_S.dim() not in (2, 4):
            raise ValueError('DISTLoss expects logits (B, K) or (B, K, H, W),'
                             f' got {tuple(preds_S.shape)}')
        T = self.tau
        dtype = compute_dtype(preds_S)
        with torch.autocast(preds_S.device.type, enabled=False):
            z_s = self._rows(preds_S.to(dtype))
            z_t = self._rows(preds_T.detach().to(dtype))
            y_s = (z_s / T).softmax(dim=1)
            y_t = (z_t / T).softmax(dim=1)
            inter = 1 - pearson_rows(y_s, y_t).mean()
            intra = 1 - pearson_rows(y_s.t(), y_t.t()).mean()
            loss = T**2 * (self.beta * inter + self.gamma * intra)
        return self.loss_weight * loss

    @staticmethod
    def _rows(z: Tensor) -> Tensor:
        """``(N, K)`` rows: logits as they are, or one row per pixel."""
        if z.dim() == 2:
            return z
        return z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
