"""SKD pair-wise (structure) distillation loss."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from mmkd.registry import MODELS

#: The Gram identity is used for an image only while its result keeps at
#: least this fraction of the terms it cancels (value: ``total / (||G_s
#: G_s^T||^2 + ||G_t G_t^T||^2)``; gradient: ``||G_s D|| / ||G_s G_s^T
#: G_s||``). Its float64 rounding is about ``1e-16`` of those terms, so this
#: keeps it near ``1e-6`` of the result; below, the QR form is used.
CANCELLATION_LIMIT = 1e-10


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


def _qr_form(g_s: Tensor, g_t: Tensor, need_grad: bool):
    """``||S_s - S_t||_F^2`` of one image (``S = G^T G``) and ``G_s (S_s -
    S_t)`` (a quarter of its gradient w.r.t. ``G_s``), subtracting before
    squaring: with the thin QR ``[G_s; G_t]^T = Q [R_s, R_t]``,
    ``S_s - S_t = Q E Q^T`` where ``E = R_s R_s^T - R_t R_t^T`` is ``k x k``
    (``k = min(M, Cs + Ct)``), so the value is ``||E||_F^2`` and ``G_s (S_s -
    S_t) = R_s^T E Q^T``. ``O(M (Cs + Ct)^2)`` time, ``O(M (Cs + Ct))``
    memory, no ``M x M`` matrix.

    Args:
        g_s (Tensor): ``(Cs, M)`` normalised student nodes.
        g_t (Tensor): ``(Ct, M)`` normalised teacher nodes.
        need_grad (bool): Also compute the gradient.

    Returns:
        tuple: The value (0-d) and ``(Cs, M)`` or None.
    """
    q, r = torch.linalg.qr(torch.cat([g_s, g_t]).T)  # (M, k), (k, Cs + Ct)
    r_s, r_t = r[:, :g_s.shape[0]], r[:, g_s.shape[0]:]
    e = r_s @ r_s.T - r_t @ r_t.T
    grad = (r_s.T @ e) @ q.T if need_grad else None
    return e.pow(2).sum(), grad


class _StructureDistance(torch.autograd.Function):
    """``sum_b ||S_s[b] - S_t[b]||_F^2`` with ``S = G^T G`` (``G``:
    ``(B, C, M)``) and its gradient w.r.t. ``G_s``, without ``M x M``
    matrices: per image by the Gram identity, or by :func:`_qr_form` where
    the identity cancels more than :data:`CANCELLATION_LIMIT` allows. The
    gradient ``4 G_s (S_s - S_t)`` is computed in the forward (the teacher
    gets none)."""

    @staticmethod
    def forward(ctx, g_s: Tensor, g_t: Tensor) -> Tensor:
        need_grad = ctx.needs_input_grad[0]
        gram_s = torch.bmm(g_s, g_s.transpose(1, 2))  # (B, Cs, Cs)
        gram_t = torch.bmm(g_t, g_t.transpose(1, 2))  # (B, Ct, Ct)
        cross = torch.bmm(g_s, g_t.transpose(1, 2))  # (B, Cs, Ct)
        terms = gram_s.pow(2).sum((1, 2)) + gram_t.pow(2).sum((1, 2))
        total = terms - 2 * cross.pow(2).sum((1, 2))
        cancelled = total < CANCELLATION_LIMIT * terms
        grad = None
        if need_grad:
            first = torch.bmm(gram_s, g_s)  # G_s S_s = (G_s G_s^T) G_s
            grad = first - torch.bmm(cross, g_t)  # - G_s S_t
            cancelled |= grad.flatten(1).norm(dim=1) < (
                CANCELLATION_LIMIT * first.flatten(1).norm(dim=1))
            del first
        del gram_s, gram_t, cross
        for b in cancelled.nonzero().flatten().tolist():
            total[b], grad_b = _qr_form(g_s[b], g_t[b], need_grad)
            if need_grad:
                grad[b] = grad_b
        if need_grad:
            ctx.save_for_backward(grad)
        return total.sum()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output: Tensor):
        grad, = ctx.saved_tensors
        return (4 * grad_output) * grad, None


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
      ``Cs x Ct``): ``O(M (Cs^2 + Ct^2 + Cs Ct))`` time, ``O(C^2)`` memory,
      and the gradient ``4 G_s (S_s - S_t)`` from the same matrices. Where
      this identity cancels (see below), the image is computed in a QR
      form instead, which subtracts before squaring: with ``[G_s; G_t]^T =
      Q [R_s, R_t]``, ``S_s - S_t = Q (R_s R_s^T - R_t R_t^T) Q^T``, a
      ``(Cs + Ct)``-square difference, ``O(M (Cs + Ct)^2)`` time (a few
      times the Gram form's, docs/en/benchmark.md), ``O(M (Cs + Ct))``
      memory.
    * ``'auto'`` (default): the method with fewer multiply-adds, i.e.
      ``'exact'`` iff ``M > (Cs^2 + Ct^2 + Cs*Ct) / (Cs + Ct)`` (about
      ``1.5 C``). The pooled default (M = 4) is naive; full-resolution maps
      are exact.

    Precision of ``'exact'``: the identity subtracts terms of size up to
    ``M^2`` to get a loss that tends to 0 as the student's structure
    approaches the teacher's, so its rounding errors are amplified. The
    nodes are therefore normalised and the products taken in float64
    (``gram_dtype='float64'``, the default), whatever the input dtype
    (autocast is disabled inside the loss; the result is float32), and, per
    image, the identity is used only while its value keeps at least
    ``1e-10`` of the terms it cancels and its gradient ``1e-10`` of the
    products it subtracts (:data:`CANCELLATION_LIMIT`); its float64 rounding
    (about ``1e-16`` of those terms) then stays near ``1e-6`` of the result.
    Closer to convergence (e.g. features whose node cosines are all close
    to 1, student and teacher structures nearly equal) the image is
    computed in the QR form, in float64, which has no such cancellation. So
    the value and the gradient of ``'exact'`` follow a float64 naive
    computation to about ``1e-6`` whatever the inputs (tests check the worst
    case, near-identical post-ReLU structures with node cosines of about
    ``1 - 1e-5``, and independent and correlated maps); measured errors and
    costs are in docs/en/benchmark.md ("Pair-wise loss, exact form"). The
    float64 copies of the normalised features (and, in the QR form, ``Q``)
    cost their memory (``8 M (Cs + Ct)`` bytes per image each, no ``M^2``
    term).
    ``gram_dtype='float32'`` (the identity alone, in float32) is only for
    losses far from 0: near convergence its rounding (~1e-7 of the terms)
    exceeds the loss. On CUDA with TF32 float32 matmuls enabled,
    ``'float32'`` products are done in float64 too (a 10-bit mantissa would
    ruin the identity). A squared distance, the float32 result is clamped
    at 0 (only rounding can make it negative, then the gradient is 0).
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
        matrices (no ``M x M`` matrix), in the dtype of ``g_s`` (the
        ``gram_dtype='float32'`` form; float64 uses
        :class:`_StructureDistance`)."""
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
            if method == 'exact' and dtype == torch.float64:
                total = _StructureDistance.apply(g_s, g_t)
            elif method == 'exact':
                total = self._exact(g_s, g_t)
            else:
                total = self._naive(g_s, g_t)
            loss = (total / (num_nodes * num_nodes) / B).float()
        return self.loss_weight * loss
