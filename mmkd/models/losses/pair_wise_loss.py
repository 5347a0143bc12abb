"""SKD pair-wise (structure) distillation loss."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmkd.registry import MODELS


def _normalize_nodes(feat: Tensor, inplace: bool = False) -> Tensor:
    """L2-normalise every node (spatial position) over channels, authors'
    way: ``f / (||f||_2 + 1e-8)`` with the norm **detached**, in the dtype
    of ``feat``.

    Args:
        feat (Tensor): ``(B, C, H, W)`` float features.
        inplace (bool): Divide ``feat`` in place (a copy without gradient).

    Returns:
        Tensor: ``(B, C, M)`` normalised node features, ``M = H * W``.
    """
    with torch.no_grad():
        if feat.dtype == torch.float64:  # no full-size temporary
            norm = torch.linalg.vector_norm(feat, dim=1, keepdim=True)
        else:  # authors' sqrt(sum(f^2))
            norm = feat.pow(2).sum(dim=1, keepdim=True).sqrt()
        norm = norm + 1e-8
        if inplace:
            return feat.div_(norm).flatten(2)
    return (feat / norm).flatten(2)


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
    float32 (``'naive'``; float64 for ``'exact'``, see below). Student and
    teacher channel counts may differ (512 vs 128 in the authors' run), the
    spatial sizes must match. The teacher is detached.
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
    ``M^2`` to get a loss that tends to 0 as the student's structure
    approaches the teacher's, so its rounding errors are amplified. The
    nodes are therefore normalised and the Gram products taken in float64
    (``gram_dtype='float64'``, the default), whatever the input dtype
    (autocast is disabled inside the loss; the result is float32). Measured
    (``tools/benchmark_pairwise.py --accuracy``) on float32 2x64x64 maps,
    Cs=128, Ct=512, against a float64 naive computation (relative errors,
    gradient as a norm):

    =====================  =======  =========  ===============  =========
    features               loss     exact      gram_dtype=      naive
                                    (float64)  'float32'        (float32)
    =====================  =======  =========  ===============  =========
    post-ReLU              5.3e-3   3e-8/3e-8  2e-6/3e-6        6e-8/8e-7
    post-ReLU, cos ~0.98   2.8e-5   2e-8/3e-8  5e-3/4e-5        2e-7/1e-5
    near convergence       1.2e-10  1e-7/3e-8  1/1 (value 0)    5e-4/6e-3
    =====================  =======  =========  ===============  =========

    (value / gradient). The float64 copies of the normalised features cost
    their memory (``8 M (Cs + Ct)`` bytes per image, no ``M^2`` term) and
    1.4-2.5x the time of float32 products (docs/en/benchmark.md,
    "Pair-wise loss, exact form"). ``gram_dtype='float32'`` is only for
    losses far from 0: near convergence its rounding (~1e-7 of the loss
    scale) exceeds the loss. On CUDA with TF32 float32 matmuls enabled,
    ``'float32'`` products are done in float64 too (a 10-bit mantissa would
    ruin the identity). A squared distance, the result is clamped at 0
    (only rounding can make it negative, then the gradient is 0).
    ``'naive'`` computes in float32, as the authors.

    Args:
        pool (str): ``'max'`` (authors) or ``'none'`` (full resolution).
            Defaults to ``'max'``.
        scale (float): Pooling kernel as a fraction of the map size, in
            ``(0, 1]``. Defaults to 0.5 (authors' run). Ignored for
            ``pool='none'``.
        method (str): ``'auto'``, ``'exact'`` or ``'naive'``.
            Defaults to ``'auto'``.
        gram_dtype (str): ``'float64'`` or ``'float32'``, the dtype of the
            node normalisation and Gram products of ``'exact'``. Defaults
            to ``'float64'``.
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
    """

    def __init__(self,
                 pool: str = 'max',
                 scale: float = 0.5,
                 method: str = 'auto',
                 gram_dtype: str = 'float64',
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

    def _kernel(self, H: int, W: int) -> tuple:
        """Authors' pooling kernel ``(int(H * scale), int(W * scale))``,
        clamped to 1."""
        return max(1, int(H * self.scale)), max(1, int(W * self.scale))

    def _pool(self, feat: Tensor) -> Tensor:
        """Authors' node aggregation: max-pool with a kernel of ``scale`` of
        the map, stride = kernel, ``ceil_mode=True`` (``ceil(H / k_h) *
        ceil(W / k_w)`` nodes)."""
        kernel = self._kernel(*feat.shape[-2:])
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

    def compute_dtype(self, method: str,
                      device: torch.device) -> torch.dtype:
        """The dtype in which ``method`` normalises the nodes and takes its
        products: float32 for ``'naive'`` (the authors' ``f.float()``);
        ``gram_dtype`` for ``'exact'``, except that float32 Gram products
        are done in float64 on CUDA when TF32 matmuls are enabled (a 10-bit
        mantissa would ruin the identity)."""
        if method == 'naive':
            return torch.float32
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

    @staticmethod
    def _exact(g_s: Tensor, g_t: Tensor) -> Tensor:
        """Sum over the batch of ``||S_s - S_t||_F^2`` from ``C x C`` Gram
        matrices (no ``M x M`` matrix), in the dtype of ``g_s``."""
        gram_s = torch.bmm(g_s, g_s.transpose(1, 2))  # (B, Cs, Cs)
        gram_t = torch.bmm(g_t, g_t.transpose(1, 2))  # (B, Ct, Ct)
        cross = torch.bmm(g_s, g_t.transpose(1, 2))  # (B, Cs, Ct)
        total = (gram_s.pow(2).sum() + gram_t.pow(2).sum() -
                 2 * cross.pow(2).sum())
        # A squared distance: only rounding can make it negative.
        return total.clamp_min(0)

    def forward(self, preds_S: Tensor, preds_T: Tensor) -> Tensor:
        """Compute the loss.

        Args:
            preds_S (Tensor): Student features ``(B, Cs, H, W)``, any float
                dtype (also under autocast).
            preds_T (Tensor): Teacher features ``(B, Ct, H, W)`` (detached
                here).

        Returns:
            Tensor: float32 scalar loss, times ``loss_weight``.
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
        B, c_s, H, W = preds_S.shape
        c_t = preds_T.shape[1]
        if self.pool == 'max':
            kh, kw = self._kernel(H, W)
            num_nodes = math.ceil(H / kh) * math.ceil(W / kw)
        else:
            num_nodes = H * W
        method = self.select_method(num_nodes, c_s, c_t)
        dtype = self.compute_dtype(method, preds_S.device)
        with torch.autocast(device_type=preds_S.device.type, enabled=False):
            feat_s = preds_S.to(dtype)
            feat_t = preds_T.detach().to(dtype)
            if self.pool == 'max':
                feat_s, feat_t = self._pool(feat_s), self._pool(feat_t)
            g_s = _normalize_nodes(feat_s)
            del feat_s
            # the teacher's copy (new tensor) is normalised in place
            g_t = _normalize_nodes(
                feat_t, inplace=feat_t.data_ptr() != preds_T.data_ptr())
            del feat_t
            if method == 'exact':
                total = self._exact(g_s, g_t)
            else:
                total = self._naive(g_s, g_t)
            loss = (total / (num_nodes * num_nodes) / B).float()
        return self.loss_weight * loss
