"""Summed KL divergence between the softmax rows of two relation (similarity)
matrices, computed block by block without materialising the teacher's."""
from typing import Any, Callable, List, Optional, Tuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

# rows of the teacher's relation matrix made at a time: 2**24 elements
# (64 MiB in float32); rows of the softmax work at a time: 2**18 elements
# (1 MiB per operand); the largest tile of the self-relations held whole:
# 2**26 elements (256 MiB in float32)
TEACHER_BLOCK_ELEMENTS = 2**24
BLOCK_ELEMENTS = 2**18
TILE_ELEMENTS = 2**26


class _Workspace:
    """The softmax work's buffers for blocks of up to ``rows`` rows of
    ``group`` columns, reused by every block.

    A row's log-sum-exp is read off its softmax at column 0,
    ``lse = x_0 - log p_0``, which needs no pass over the row; it is exact
    while ``p_0`` is a normal float (always for CIRKD's cosine relations at
    ``tau = 0.1``: ``p_0 >= e^-20 / N``). ``underflow`` records a block
    where it is not, without a device sync; the caller then runs again with
    ``exact=True``: ``lse = max_g x - log max_g p`` (at the row's maximum the
    softmax is ``1 / Z``), two more passes per row.
    """

    def __init__(self,
                 rows: int,
                 group: int,
                 dtype: torch.dtype,
                 device: torch.device,
                 columns: bool = False,
                 exact: bool = False) -> None:
        count = 5 if columns else 3
        self.buffers = [
            torch.empty(rows, group, dtype=dtype, device=device)
            for _ in range(count)
        ]
        self.dtype = dtype
        self.exact = exact
        self.underflow = torch.zeros((), dtype=torch.bool, device=device)
        self.tiny = torch.finfo(dtype).tiny

    def lse(self, x: Tensor, p: Tensor) -> Tensor:
        """Log-sum-exp of the rows of ``x`` ``(n, g)`` from their softmax
        ``p``: ``(n,)``."""
        if self.exact:
            return x.amax(1) - p.amax(1).log()
        p0 = p[:, 0]
        self.underflow |= (p0 < self.tiny).any()
        return x[:, 0] - p0.log()

    def kl_rows(self,
                t: Tensor,
                s_store: Tensor,
                lse_columns: Optional[Tuple[Tensor, Tensor]] = None
                ) -> Tensor:
        """Summed KL of rows ``(n, g)`` of the teacher's and the student's
        relations, the softmax over each row; with ``lse_columns`` (the
        log-sum-exp of each column of the rows' tile, teacher's and
        student's ``(g,)``) also the column softmax terms of these rows,
        less the tile's ``sum_c (lse_s[c] - lse_t[c])``, which the caller
        adds once per tile. The gradient with respect to the student's
        relations (``softmax(s) - softmax(t)`` of the rows, plus that of the
        columns) is written over ``s_store``.

        Per row: ``sum_g p_t (log p_t - log p_s) = <p_t, t - s> - lse_t +
        lse_s``.
        """
        n = t.shape[0]
        t, s = t.to(self.dtype), s_store.to(self.dtype)
        p_t = torch.softmax(t, 1, out=self.buffers[0][:n])
        p_s = torch.softmax(s, 1, out=self.buffers[1][:n])
        diff = torch.sub(t, s, out=self.buffers[2][:n]).view(-1)
        kl = (torch.dot(p_t.view(-1), diff) +
              (self.lse(s, p_s) - self.lse(t, p_t)).sum())
        if lse_columns is not None:
            lse_t, lse_s = lse_columns
            q_t = torch.sub(t, lse_t, out=self.buffers[3][:n]).exp_()
            q_s = torch.sub(s, lse_s, out=self.buffers[4][:n]).exp_()
            kl = kl + torch.dot(q_t.view(-1), diff)
            p_s.add_(q_s).sub_(q_t)
        if s_store.dtype == self.dtype:  # s is s_store: written last
            torch.sub(p_s, p_t, out=s_store)
        else:
            s_store.copy_(p_s.sub_(p_t))
        return kl

    def column_lse(self, tile: Tensor, step: int) -> Tensor:
        """``logsumexp`` over the rows of ``tile`` ``(g, g)``, in blocks of
        ``step`` rows: ``(g,)``."""
        top = tile.amax(0).to(self.dtype)
        total = torch.zeros_like(top)
        for r in range(0, tile.shape[0], step):
            block = tile[r:r + step].to(self.dtype)
            total += torch.sub(
                block, top, out=self.buffers[0][:block.shape[0]]).exp_().sum(0)
        return top + total.log()


def _tiles(num: int, group: int) -> List[slice]:
    """The rows (or columns) of each of the ``num`` tiles of ``group``."""
    return [slice(i * group, (i + 1) * group) for i in range(num)]


def _kl_and_grads(relations: Callable, *args) -> Tuple[Tensor, Any]:
    """``relations(*args, exact=False)``, run again with ``exact=True``
    when a row's softmax underflowed at column 0 (the first run's
    gradient freed before)."""
    total, grads = relations(*args, exact=False)
    if total is None:
        grads = None  # not held twice
        total, grads = relations(*args, exact=True)
    return total, grads


class _RelationKLSum(torch.autograd.Function):

    @staticmethod
    def forward(ctx, left_S: Tensor, right_S: Tensor, left_T: Tensor,
                right_T: Tensor, group: int) -> Tensor:
        total, grad = _kl_and_grads(_RelationKLSum.relations, left_S,
                                    right_S, left_T, right_T, group)
        ctx.save_for_backward(grad, left_S, right_S)
        return total

    @staticmethod
    def relations(left_S: Tensor, right_S: Tensor, left_T: Tensor,
                  right_T: Tensor, group: int,
                  exact: bool) -> Tuple[Optional[Tensor], Tensor]:
        """The summed KL and the gradient with respect to ``S``; ``None``
        for the KL when ``exact=False`` cannot give it."""
        R, M = left_S.shape[0], right_S.shape[0]
        # the student's relations; overwritten below by the gradient
        grad = left_S @ right_S.T  # (R, M)
        dtype = torch.promote_types(grad.dtype, torch.float32)
        total = grad.new_zeros((), dtype=torch.float64)
        big = min(R, max(1, TEACHER_BLOCK_ELEMENTS // M))
        step = max(1, BLOCK_ELEMENTS // M)
        work = _Workspace(step * (M // group), group, dtype, grad.device,
                          exact=exact)
        relations_T = left_T[:big] @ right_T.T  # one buffer for all blocks
        right_T = right_T.to(relations_T.dtype)  # (autocast's dtype)
        for r0 in range(0, R, big):
            r1 = min(R, r0 + big)
            if r0:
                torch.mm(left_T[r0:r1].to(relations_T.dtype), right_T.T,
                         out=relations_T[:r1 - r0])
            for q in range(r0, r1, step):
                rows = slice(q, min(q + step, r1))
                t = relations_T[q - r0:rows.stop - r0].view(-1, group)
                total += work.kl_rows(t, grad[rows].view(-1, group)).to(
                    torch.float64)
        if work.underflow:
            return None, grad
        return total.to(dtype), grad

    @staticmethod
    @once_differentiable  # G is a constant here: no second derivatives
    def backward(ctx, grad_output: Tensor):
        grad, left_S, right_S = ctx.saved_tensors
        grad_left = grad_right = None
        if ctx.needs_input_grad[0]:  # d S / d left: G right
            grad_left = ((grad @ right_S.to(grad.dtype)) *
                         grad_output).to(left_S.dtype)
        if ctx.needs_input_grad[1]:  # d S / d right: G^T left
            grad_right = ((grad.T @ left_S.to(grad.dtype)) *
                          grad_output).to(right_S.dtype)
        return grad_left, grad_right, None, None, None


def _check_factors(left_S: Tensor,
                   right_S: Tensor,
                   left_T: Tensor,
                   right_T: Tensor,
                   group: int,
                   caller: str = 'relation_kl_sum') -> None:
    R, M = left_S.shape[0], right_S.shape[0]
    if (left_S.dim() != 2 or right_S.dim() != 2 or left_T.dim() != 2
            or right_T.dim() != 2 or left_S.shape[1] != right_S.shape[1]
            or left_T.shape[1] != right_T.shape[1] or left_T.shape[0] != R
            or right_T.shape[0] != M or R == 0 or M == 0 or group <= 0
            or M % group):
        raise ValueError(
            f'{caller} expects (R, C_s) and (M, C_s) student factors, '
            '(R, C_t) and (M, C_t) teacher factors (R, M > 0) and a positive '
            'group dividing M, '
            f'got {tuple(left_S.shape)}, {tuple(right_S.shape)}, '
            f'{tuple(left_T.shape)}, {tuple(right_T.shape)}, group={group}')


def relation_kl_sum(left_S: Tensor,
                    right_S: Tensor,
                    left_T: Tensor,
                    right_T: Tensor,
                    group: Optional[int] = None) -> Tensor:
    """``sum_r sum_g KL(softmax(T[r, g]) || softmax(S[r, g]))`` for the
    relation matrices ``S = left_S right_S^T`` and ``T = left_T right_T^T``
    ``(R, M)``, the softmax over each group ``g`` of ``group`` consecutive
    columns (default: the whole row of ``M``).

    The same value and gradients as
    ``F.kl_div(F.log_softmax(S_g, 1), F.softmax(T_g, 1), reduction='sum')``
    on the ``(R M / group, group)`` view, but the teacher's ``T`` is made a
    block of rows at a time and never held whole, the softmax work runs
    on blocks of rows, and one ``(R, M)`` tensor is kept for the backward
    pass: ``softmax(S) - softmax(T)``, the gradient, written over ``S``.
    The relation matrices of CIRKD are large (``(B N, B N)`` per batch) and
    memory-bound.

    Args:
        left_S (Tensor): ``(R, C_s)``; gradients reach it.
        right_S (Tensor): ``(M, C_s)``; gradients reach it.
        left_T (Tensor): ``(R, C_t)``; no gradient.
        right_T (Tensor): ``(M, C_t)``; no gradient.
        group (int, optional): Columns per softmax; must divide ``M``.

    Returns:
        Tensor: Scalar; float32 when the relations are bfloat16 / float16
        (under autocast; the softmax work is in float32), else their dtype.
        Once differentiable: a second derivative raises.
    """
    group = right_S.shape[0] if group is None else group
    _check_factors(left_S, right_S, left_T, right_T, group)
    return _RelationKLSum.apply(left_S, right_S, left_T.detach(),
                                right_T.detach(), group)


class _SelfRelationKLSum(torch.autograd.Function):

    @staticmethod
    def forward(ctx, x_S: Tensor, x_T: Tensor, scale: float,
                group: int) -> Tensor:
        total, grads = _kl_and_grads(_SelfRelationKLSum.relations, x_S, x_T,
                                     scale, group)
        ctx.scale, ctx.num = scale, x_S.shape[0] // group
        ctx.save_for_backward(x_S, *grads)
        return total

    @staticmethod
    def relations(x_S: Tensor, x_T: Tensor, scale: float, group: int,
                  exact: bool) -> Tuple[Optional[Tensor], List[Tensor]]:
        """The summed KL and the gradient's tiles ``(i, j)``, ``i <= j``, row
        by row; ``None`` for the KL when ``exact=False`` cannot give it."""
        num = x_S.shape[0] // group
        tiles = _tiles(num, group)
        left_S, left_T = x_S * scale, x_T * scale
        step = max(1, BLOCK_ELEMENTS // group)
        # the softmax work in float32, or float64 for float64 factors (the
        # tiles' dtype promoted: autocast lowers only float32 products)
        work = _Workspace(min(step, group), group,
                          torch.promote_types(x_S.dtype, torch.float32),
                          x_S.device, columns=num > 1, exact=exact)
        total = x_S.new_zeros((), dtype=torch.float64)
        grads = []
        for i, rows_i in enumerate(tiles):
            for j, rows_j in enumerate(tiles[i:], i):
                S = left_S[rows_i] @ x_S[rows_j].T  # overwritten by the grad
                T = left_T[rows_i] @ x_T[rows_j].T
                columns = None
                if i != j:  # tile (j, i) is the transpose of (i, j)
                    columns = (work.column_lse(T, step),
                               work.column_lse(S, step))
                    total += (columns[1] - columns[0]).sum().to(torch.float64)
                for r in range(0, group, step):
                    total += work.kl_rows(T[r:r + step], S[r:r + step],
                                          columns).to(torch.float64)
                grads.append(S)
                del T  # one teacher tile at a time
        if work.underflow:
            return None, grads
        return total.to(work.dtype), grads

    @staticmethod
    @once_differentiable  # G is a constant here: no second derivatives
    def backward(ctx, grad_output: Tensor):
        x_S, *grads = ctx.saved_tensors
        group = x_S.shape[0] // ctx.num
        x = x_S.to(grads[0].dtype)
        # summed in at least float32: one rounding per product under autocast
        grad_x = torch.zeros_like(
            x, dtype=torch.promote_types(x.dtype, torch.float32))
        grads = iter(grads)
        tiles = _tiles(ctx.num, group)
        for i, rows_i in enumerate(tiles):
            for rows_j in tiles[i:]:
                G = next(grads)  # d / d S_ij; S_ij = scale x_i x_j^T
                grad_x[rows_i] += G @ x[rows_j]
                grad_x[rows_j] += G.T @ x[rows_i]
        # scaled before the cast: one rounding for a low-precision leaf
        return ((grad_x * (ctx.scale * grad_output)).to(x_S.dtype), None,
                None, None)


def self_relation_kl_sum(x_S: Tensor,
                         x_T: Tensor,
                         scale: float,
                         group: int) -> Tensor:
    """:func:`relation_kl_sum` of the symmetric relations
    ``S = scale x_S x_S^T`` and ``T = scale x_T x_T^T`` ``(R, R)``, the
    softmax over each group of ``group`` consecutive columns: CIRKD's
    mini-batch relations, ``R = B N`` pixels, ``group = N``.

    The relations are made tile by tile, ``(group, group)`` each, and only
    the tiles ``(i, j)`` with ``i <= j``: tile ``(j, i)`` is the transpose
    of ``(i, j)``, so its row softmax terms are the column softmax terms of
    ``(i, j)``: after two passes over each of the two tiles (teacher's and
    student's) for the columns' log-sum-exp, the pass over its rows gives
    both. This saves the products of the tiles below the diagonal
    (``B (B - 1) / 2`` of the ``B^2``, for the teacher and the student) and
    as many of the backward's (``B (B + 1)`` products instead of ``2 B^2``:
    6 instead of 8 for 2 images). The ``B (B + 1) / 2`` tiles of the
    gradient are kept for the backward pass (written over the student's
    tiles) and one teacher tile at a time: ``(B (B + 1) / 2 + 1) N^2``
    elements at most, against the ``B^2 N^2`` of :func:`relation_kl_sum`'s
    whole gradient. One image (``B = 1``) whose tile has more than
    ``TILE_ELEMENTS`` elements goes to :func:`relation_kl_sum`, which makes
    the teacher's relations ``TEACHER_BLOCK_ELEMENTS`` at a time.

    Args:
        x_S (Tensor): ``(R, C_s)``; gradients reach it.
        x_T (Tensor): ``(R, C_t)``; no gradient.
        scale (float): The relations' factor (``1 / tau``).
        group (int): Columns per softmax and rows / columns per tile; must
            divide ``R``.

    Returns:
        Tensor: Scalar, as :func:`relation_kl_sum`.
    """
    _check_factors(x_S, x_S, x_T, x_T, group, 'self_relation_kl_sum')
    if x_S.shape[0] == group and group * group > TILE_ELEMENTS:
        return relation_kl_sum(x_S * scale, x_S, x_T * scale, x_T, group)
    return _SelfRelationKLSum.apply(x_S, x_T.detach(), scale, group)
