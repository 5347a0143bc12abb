"""CIRKD mini-batch pixel-to-pixel distillation."""
import torch.nn.functional as F
from torch import Tensor, nn

from mmkd.registry import MODELS
from ..utils import self_relation_kl_sum


@MODELS.register_module()
class CIRKDMiniBatchLoss(nn.Module):
    """Mini-batch pixel-to-pixel distillation of CIRKD (Yang et al., CVPR
    2022, Sec. 3.2; docs/en/methods.md#cirkd), as the authors'
    ``CriterionMiniBatchCrossImagePair`` (winycg/CIRKD
    ``losses/cirkd_mini_batch.py``).

    With the student and teacher embeddings ``(B, C_s, h, w)`` and
    ``(B, C_t, h, w)`` L2-normalised over channels (``F_i``: image ``i``'s
    ``N = h w`` pixels), for every ordered pair of images ``(i, j)`` the
    pixel similarity map ``S_ij = F_i F_j^T`` ``(N, N)``::

        loss = 1 / B^2 * sum_{i, j} 1 / N * sum_n
               KL(softmax(S^t_ij[n] / tau) || softmax(S^s_ij[n] / tau))

    (``F.kl_div(..., reduction='batchmean')`` over the ``N`` rows, as the
    code; no ``tau^2`` factor). The channel counts of student and teacher
    may differ (the maps are ``N x N``); the spatial sizes must agree. With
    ``pooling=True`` both embeddings are first average-pooled 2x2 (stride
    2, ``ceil_mode``), the authors' option.

    The ``B^2`` maps are the tiles of the ``(B N, B N)`` relations of all
    pixels, each row a softmax over each image's ``N`` columns. They are
    symmetric (``S_ji = S_ij^T``):
    :func:`~mmkd.models.utils.self_relation_kl_sum` makes only the maps
    ``(i, j)`` with ``i <= j``, takes the map ``(j, i)``'s terms from the
    columns of ``(i, j)``, and keeps for the backward pass the gradient
    written over the student's maps (the authors' loop over pairs makes all
    ``B^2`` maps of both networks and keeps two per pair). Memory:
    ``N^2`` floats per map (268 MB in float32 for 64 x 128 embeddings,
    Cityscapes 512 x 1024 crops at output stride 8; half under bf16 / fp16
    autocast), ``B (B + 1) / 2`` of them held from the forward to the
    backward, plus one of the teacher's at a time.

    The relations are among the images of one process's batch: the
    authors' all-gather lines are commented out.

    Args:
        tau (float): Temperature of the similarities. Authors: 0.1
            (``--contrast-temperature``).
        pooling (bool): 2x2 average pooling first. Defaults to False (the
            authors' training script).
        loss_weight (float): Multiplier. Authors: 1
            (``--lambda-minibatch-pixel``).
    """

    def __init__(self,
                 tau: float = 0.1,
                 pooling: bool = False,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if tau <= 0:
            raise ValueError(f'CIRKDMiniBatchLoss: tau must be positive, '
                             f'got {tau}')
        self.tau = tau
        self.pooling = pooling
        self.loss_weight = loss_weight

    def forward(self, preds_S: Tensor, preds_T: Tensor) -> Tensor:
        """Compute the loss.

        Args:
            preds_S (Tensor): Student embedding ``(B, C_s, h, w)``.
            preds_T (Tensor): Teacher embedding ``(B, C_t, h, w)`` (detached
                here).

        Returns:
            Tensor: Scalar loss, times ``loss_weight``.
        """
        if preds_S.dim() != 4 or preds_T.dim() != 4:
            raise ValueError(
                'CIRKDMiniBatchLoss expects (B, C, h, w) embeddings, got '
                f'{tuple(preds_S.shape)} and {tuple(preds_T.shape)}')
        if (preds_S.shape[0] != preds_T.shape[0]
                or preds_S.shape[2:] != preds_T.shape[2:]):
            raise ValueError(
                'CIRKDMiniBatchLoss: student and teacher embeddings must '
                'have the same batch and spatial size (the similarity maps '
                f'are pixel by pixel), got {tuple(preds_S.shape)} and '
                f'{tuple(preds_T.shape)}; tap features of the same output '
                'stride')
        preds_T = preds_T.detach()
        if self.pooling:
            preds_S = F.avg_pool2d(preds_S, 2, 2, ceil_mode=True)
            preds_T = F.avg_pool2d(preds_T, 2, 2, ceil_mode=True)
        B, _, h, w = preds_S.shape
        N = h * w
        s, t = self._pixels(preds_S), self._pixels(preds_T)
        kl = self_relation_kl_sum(s, t, 1. / self.tau, group=N)
        return self.loss_weight * kl / (N * B * B)

    @staticmethod
    def _pixels(x: Tensor) -> Tensor:
        """The pixels of all images, normalised over channels: ``(B N, C)``
        (image by image), so that the relations ``S[(i, n), (j, m)] =
        <x_i[:, n], x_j[:, m]> / tau`` are ``(B N, B N)``, softmax over each
        image ``j``'s ``N`` columns."""
        x = F.normalize(x, p=2, dim=1)
        return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])
