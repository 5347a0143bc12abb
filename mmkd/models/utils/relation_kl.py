"""Summed KL divergence between the softmax rows of two relation (similarity)
matrices, computed block by block without materialising the teacher's."""
from typing import Optional

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

# rows of the teacher's relation matrix made at a time: 2**24 elements
# (64 MiB in float32); rows of the softmax work at a time: 2**18 elements
# (1 MiB per operand, in cache)
TEACHER_BLOCK_ELEMENTS = 2**24
BLOCK_ELEMENTS = 2**18


def _softmax_lse(logits: Tensor):
    """Softmax of rows ``(r, M)`` and the rows' log-sum-exp ``(r,)``, read
    off the softmax at each row's maximum: ``lse = x_max - log p_max``."""
    p = torch.softmax(logits, dim=1)
    top, where = logits.max(1, keepdim=True)
    return p, (top - p.gather(1, where).log()).squeeze(1)


class _RelationKLSum(torch.autograd.Function):

    @staticmethod
    def forward(ctx, left_S: Tensor, right_S: Tensor, left_T: Tensor,
                right_T: Tensor, group: int) -> Tensor:
        R, M = left_S.shape[0], right_S.shape[0]
        # the student's relations; overwritten below by the gradient
        grad = left_S @ right_S.T  # (R, M)
        dtype = torch.promote_types(grad.dtype, torch.float32)
        total = grad.new_zeros((), dtype=torch.float64)
        big = min(R, max(1, TEACHER_BLOCK_ELEMENTS // M))
        step = max(1, BLOCK_ELEMENTS // M)
        relations_T = left_T[:big] @ right_T.T  # one buffer for all blocks
        right_T = right_T.to(relations_T.dtype)  # (autocast's dtype)
        for r0 in range(0, R, big):
            r1 = min(R, r0 + big)
            if r0:
                torch.mm(left_T[r0:r1].to(relations_T.dtype), right_T.T,
                         out=relations_T[:r1 - r0])
            for q in range(r0, r1, step):
                rows = slice(q, min(q + step, r1))
                t = relations_T[q - r0:rows.stop - r0].to(dtype).reshape(
                    -1, group)
                s = grad[rows].to(dtype).reshape(-1, group)
                p_t, lse_t = _softmax_lse(t)
                p_s, lse_s = _softmax_lse(s)
                # sum p_t (log p_t - log p_s) = sum p_t (t - s) - lse_t + lse_s
                kl = torch.dot(p_t.flatten(), (t - s).flatten()) + (
                    lse_s - lse_t).sum()
                total += kl.to(torch.float64)
                # d kl / d s = softmax(s) - p_t
                grad[rows].view(-1, group).copy_(p_s.sub_(p_t))
        ctx.save_for_backward(grad, left_S, right_S)
        return total.to(dtype)

    @staticmethod
    @once_differentiable  # G is a constant here: no second derivatives
    def backward(ctx, grad_output: Tensor):
        grad, left_S, right_S = ctx.saved_tensors
        grad_left = grad_right = None
        if ctx.needs_input_grad[0]:  # d S / d left: G right
            grad_left = (grad @ right_S.to(grad.dtype)).to(
                left_S.dtype) * grad_output
        if ctx.needs_input_grad[1]:  # d S / d right: G^T left
            grad_right = (grad.T @ left_S.to(grad.dtype)).to(
                right_S.dtype) * grad_output
        return grad_left, grad_right, None, None, None


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
    on blocks of rows that stay in the CPU's cache, and one ``(R, M)``
    tensor is kept for the backward pass: ``softmax(S) - softmax(T)``, the
    gradient, written over ``S``. The relation matrices of CIRKD are large
    (``(B N, B N)`` per batch) and memory-bound.

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
    R, M = left_S.shape[0], right_S.shape[0]
    group = M if group is None else group
    if (left_S.dim() != 2 or right_S.dim() != 2 or left_T.dim() != 2
            or right_T.dim() != 2 or left_S.shape[1] != right_S.shape[1]
            or left_T.shape[1] != right_T.shape[1] or left_T.shape[0] != R
            or right_T.shape[0] != M or R == 0 or M == 0 or group <= 0
            or M % group):
        raise ValueError(
            'relation_kl_sum expects (R, C_s) and (M, C_s) student factors, '
            '(R, C_t) and (M, C_t) teacher factors (R, M > 0) and a positive '
            'group dividing M, '
            f'got {tuple(left_S.shape)}, {tuple(right_S.shape)}, '
            f'{tuple(left_T.shape)}, {tuple(right_T.shape)}, group={group}')
    return _RelationKLSum.apply(left_S, right_S, left_T.detach(),
                                right_T.detach(), group)
