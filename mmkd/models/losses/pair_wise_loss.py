"""SKD pair-wise (structure) distillation loss."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmkd.registry import MODELS


def _normalize_nodes(feat: Tensor) -> Tensor:
    """L2-normalise every node (spatial position) over channels, authors'
    way: ``f / (||f||_2 + 1e-8)`` with the norm **detached**.

    Args:
        feat (Tensor): ``(B, C, H, W)`` float features.

    Returns:
        Tensor: ``(B, C, M)`` normalised node features, ``M = H * W``.
    """
    norm = feat.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-8
    return (feat / norm.detach()).flatten(2)


@MODELS.register_module()
class PairWiseLoss(nn.Module):
    """Pair-wise distillation of SKD: the paper's ``l_pa`` (Liu et al.,
    CVPR 2019 / TPAMI, Sec. 3.1), as the authors'
    ``CriterionPairWiseforWholeFeatAfterPool`` + ``sim_dis_compute``
    (docs/en/methods.md#skd-pair-wise).

    The feature map is a graph whose nodes are (aggregated) spatial
    positions; the edge weight is the cosine similarity of two nodes. The
    student's similarity matrix is pulled towards the teacher's one::

        nodes:  pool='max':  MaxPool2d(k=(int(H*s), int(W*s)), stride=k,
                             ceil_mode=True)(f)    # s=0.5: 64x64 -> 2x2 nodes
                pool='none': every position is a node (M = H * W)
        g_i   = f_i / (||f_i||_2 + 1e-8).detach()  # per node, over channels
        S     = G G^T                              # (M, M), G: (M, C)
        loss  = sum_{b,i,j} (S_t - S_s)^2 / (M^2 * B)   # mean over B*M*M

    Details kept from the authors' code: the max-pool kernel is
    ``int(scale * size)`` with ``ceil_mode=True``, so sizes that do not
    divide give partial windows (65x65 with ``scale=0.5``: kernel 32, 3x3
    nodes); the norm in the cosine is **detached** and offset by ``1e-8``
    (so no gradient flows through the normalisation); features are cast to
    float32. Student and teacher channel counts may differ (512 vs 128 in the
    authors' run), the spatial sizes must match. The teacher is detached.
    Paper vs code: the TPAMI paper describes ``beta x beta`` node
    aggregation; the released run uses ``scale=0.5`` (2x2 nodes for a 512
    crop) and ``lambda_pa = 0.5``. Re-implementations differ (CIRKD: 2x2
    kernel, non-detached ``F.normalize``), see
    docs/en/methods.md#skd-paper-vs-code. If
    ``int(scale * size)`` is 0 (tiny maps, where the authors' code fails)
    the kernel is clamped to 1.

    Computation (``method``):

    * ``'naive'``: build both ``(B, M, M)`` matrices: ``O(M^2 (Cs + Ct))``
      time, ``O(M^2)`` memory (4 GB per image at M = 128*256).
    * ``'exact'``: same value without the ``M x M`` matrices, using
      ``||G_s G_s^T - G_t G_t^T||_F^2 = ||G_s^T G_s||_F^2 + ||G_t^T G_t||_F^2
      - 2 ||G_s^T G_t||_F^2`` (Gram matrices ``Cs x Cs``, ``Ct x Ct`` and
      ``Cs x Ct``): ``O(M (Cs^2 + Ct^2 + Cs Ct))`` time, ``O(C^2)`` memory.
      Autograd through it gives the gradient of the naive form.
    * ``'auto'`` (default): the method with fewer multiply-adds, i.e.
      ``'exact'`` iff ``M > (Cs^2 + Ct^2 + Cs*Ct) / (Cs + Ct)`` (about
      ``1.5 C``). The pooled default (M = 4) is naive; full-resolution maps
      are exact.

    Precision of ``'exact'``: the identity subtracts terms of size up to
    ``M^2`` (all cosines near 1) to get the loss, so rounding errors are
    amplified. Measured against a float64 naive reference on 2x64x64 maps
    (Cs=128, Ct=512), float32 Gram products give a relative error of
    ~3e-8 (random features), ~2e-6 (post-ReLU features) and <=7e-5 in a
    hard case (cosines ~0.99); gradients agree to <=1e-5 (relative norm).
    So the default ``gram_dtype='float32'`` is enough; ``'float64'`` brings
    the value error to ~1e-8 at twice the memory of the normalised features.
    TF32 matmuls (10-bit mantissa) would ruin the identity, so on CUDA with
    TF32 enabled for float32 matmuls the Gram products are done in float64;
    autocast is disabled inside the loss. When the two structures almost
    coincide, float32 rounding can make the ``'exact'`` value a tiny
    negative number (of the size of the errors above); it is not clamped.

    Args:
        pool (str): ``'max'`` (authors) or ``'none'`` (full resolution).
            Defaults to ``'max'``.
        scale (float): Pooling kernel as a fraction of the map size, in
            ``(0, 1]``. Defaults to 0.5 (authors' run). Ignored for
            ``pool='none'``.
        method (str): ``'auto'``, ``'exact'`` or ``'naive'``.
            Defaults to ``'auto'``.
        gram_dtype (str): ``'float32'`` or ``'float64'``, the dtype of the
            Gram products of ``'exact'``. Defaults to ``'float32'``.
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
    """

    def __init__(self,
                 pool: str = 'max',
                 scale: float = 0.5,
                 method: str = 'auto',
                 gram_dtype: str = 'float32',
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if pool not in ('max', 'none'):
            raise ValueError(
                f"PairWiseLoss: pool must be 'max' or 'none', got {pool!r}")
        if not 0 < scale <= 1:
            raise ValueError(
                f'PairWiseLoss: scale must be in (0, 1], got {scale}')
        if method not in ('auto', 'exact', 'naive'):
            raise ValueError("PairWiseLoss: method must be 'auto', 'exact' "
                             f"or 'naive', got {method!r}")
        if gram_dtype not in ('float32', 'float64'):
            raise ValueError("PairWiseLoss: gram_dtype must be 'float32' or "
                             f"'float64', got {gram_dtype!r}")
        self.pool = pool
        self.scale = scale
        self.method = method
        self.gram_dtype = gram_dtype
        self.loss_weight = loss_weight

    def _pool(self, feat: Tensor) -> Tensor:
        """Authors' node aggregation: max-pool with a kernel of ``scale`` of
        the map, stride = kernel, ``ceil_mode=True``."""
        H, W = feat.shape[-2:]
        kernel = (max(1, int(H * self.scale)), max(1, int(W * self.scale)))
        return F.max_pool2d(feat,
                            kernel_size=kernel,
                            stride=kernel,
                            padding=0,
                            ceil_mode=True)

    def select_method(self, num_nodes: int, c_s: int, c_t: int) -> str:
        """Return ``'exact'`` or ``'naive'`` for ``M`` nodes (see class
        docstring)."""
        if self.method != 'auto':
            return self.method
        cost_naive = num_nodes * num_nodes * (c_s + c_t)
        cost_exact = num_nodes * (c_s * c_s + c_t * c_t + c_s * c_t)
        return 'exact' if cost_exact < cost_naive else 'naive'

    def _gram_dtype(self, device: torch.device) -> torch.dtype:
        if self.gram_dtype == 'float64':
            return torch.float64
        if device.type == 'cuda' and (torch.backends.cuda.matmul.allow_tf32
                                      or torch.get_float32_matmul_precision()
                                      != 'highest'):
            return torch.float64
        return torch.float32

    @staticmethod
    def _naive(g_s: Tensor, g_t: Tensor) -> Tensor:
        """Sum over the batch of ``||S_s - S_t||_F^2`` with explicit
        ``(B, M, M)`` similarity matrices."""
        sim_s = torch.bmm(g_s.transpose(1, 2), g_s)
        sim_t = torch.bmm(g_t.transpose(1, 2), g_t)
        return (sim_t - sim_s).pow(2).sum()

    def _exact(self, g_s: Tensor, g_t: Tensor) -> Tensor:
        """Sum over the batch of ``||S_s - S_t||_F^2`` from ``C x C`` Gram
        matrices (no ``M x M`` matrix)."""
        dtype = self._gram_dtype(g_s.device)
        g_s, g_t = g_s.to(dtype), g_t.to(dtype)
        gram_s = torch.bmm(g_s, g_s.transpose(1, 2))  # (B, Cs, Cs)
        gram_t = torch.bmm(g_t, g_t.transpose(1, 2))  # (B, Ct, Ct)
        cross = torch.bmm(g_s, g_t.transpose(1, 2))  # (B, Cs, Ct)
        total = (gram_s.pow(2).sum() + gram_t.pow(2).sum() -
                 2 * cross.pow(2).sum())
        return total.float()

    def forward(self, preds_S: Tensor, preds_T: Tensor) -> Tensor:
        """Compute the loss.

        Args:
            preds_S (Tensor): Student features ``(B, Cs, H, W)``.
            preds_T (Tensor): Teacher features ``(B, Ct, H, W)`` (detached
                here).

        Returns:
            Tensor: Scalar loss, times ``loss_weight``.
        """
        if preds_S.dim() != 4 or preds_T.dim() != 4:
            raise ValueError('PairWiseLoss expects features of shape '
                             f'(B, C, H, W), got {tuple(preds_S.shape)} and '
                             f'{tuple(preds_T.shape)}')
        if (preds_S.shape[0] != preds_T.shape[0]
                or preds_S.shape[-2:] != preds_T.shape[-2:]):
            raise ValueError(
                'PairWiseLoss: preds_S and preds_T must have the same batch '
                'size and spatial size (channels may differ), got '
                f'{tuple(preds_S.shape)} and {tuple(preds_T.shape)}')
        with torch.autocast(device_type=preds_S.device.type, enabled=False):
            feat_s = preds_S.float()
            feat_t = preds_T.detach().float()
            if self.pool == 'max':
                feat_s, feat_t = self._pool(feat_s), self._pool(feat_t)
            B = feat_s.shape[0]
            g_s, g_t = _normalize_nodes(feat_s), _normalize_nodes(feat_t)
            num_nodes = g_s.shape[-1]
            method = self.select_method(num_nodes, g_s.shape[1], g_t.shape[1])
            if method == 'exact':
                total = self._exact(g_s, g_t)
            else:
                total = self._naive(g_s, g_t)
            loss = total / (num_nodes * num_nodes) / B
        return self.loss_weight * loss
