"""Summed row-wise KL divergence between two softmax distributions, computed
in cache-sized blocks of rows, saving one tensor for the backward pass."""
from typing import Tuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

# elements of a block of rows: 2**18 float32 values (1 MiB per operand)
BLOCK_ELEMENTS = 2**18


def _softmax_lse(logits: Tensor) -> Tuple[Tensor, Tensor]:
    """Softmax of rows ``(r, M)`` and the rows' log-sum-exp ``(r,)``, read
    off the softmax at each row's maximum: ``lse = x_max - log p_max``."""
    p = torch.softmax(logits, dim=1)
    top, where = logits.max(1, keepdim=True)
    return p, (top - p.gather(1, where).log()).squeeze(1)


class _RowwiseKLSum(torch.autograd.Function):
    """``sum_r KL(softmax(T_r) || softmax(S_r))``; gradient to ``S`` only."""

    @staticmethod
    def forward(ctx, logits_S: Tensor, logits_T: Tensor) -> Tensor:
        R, M = logits_S.shape
        dtype = torch.promote_types(logits_S.dtype, torch.float32)
        grad = logits_S.new_empty((R, M), dtype=dtype)
        total = logits_S.new_zeros((), dtype=torch.float64)
        step = max(1, BLOCK_ELEMENTS // max(M, 1))
        for r in range(0, R, step):
            s = logits_S[r:r + step].to(dtype)
            t = logits_T[r:r + step].to(dtype)
            p_t, lse_t = _softmax_lse(t)
            p_s, lse_s = _softmax_lse(s)
            # sum_m p_t (log p_t - log p_s) = sum_m p_t (t - s) - lse_t + lse_s
            kl = torch.dot(p_t.flatten(), (t - s).flatten()) + (
                lse_s - lse_t).sum()
            total += kl.to(torch.float64)
            # d kl / d s = softmax(s) - p_t
            torch.sub(p_s, p_t, out=grad[r:r + step])
        ctx.save_for_backward(grad)
        ctx.input_dtype = logits_S.dtype
        return total.to(dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output: Tensor):
        grad, = ctx.saved_tensors
        return (grad * grad_output).to(ctx.input_dtype), None


def rowwise_kl_sum(logits_S: Tensor, logits_T: Tensor) -> Tensor:
    """``sum_r KL(softmax(logits_T[r]) || softmax(logits_S[r]))``.

    The same value and gradient as
    ``F.kl_div(F.log_softmax(logits_S, 1), F.softmax(logits_T, 1),
    reduction='sum')``, but computed in blocks of rows that stay in the
    CPU's cache, and saving for the backward pass one ``(R, M)`` tensor,
    ``softmax(logits_S) - softmax(logits_T)`` (the gradient), instead of
    two: the relation maps of CIRKD (``(B N, B N)`` per batch) are large
    and memory-bound.

    Args:
        logits_S (Tensor): Student logits ``(R, M)``, softmax over ``M``.
        logits_T (Tensor): Teacher logits ``(R, M)``; no gradient reaches
            them.

    Returns:
        Tensor: Scalar; float32 for bfloat16 / float16 inputs (the blocks
        are computed in float32), else the inputs' dtype.
    """
    if logits_S.dim() != 2 or logits_S.shape != logits_T.shape:
        raise ValueError('rowwise_kl_sum expects two (R, M) logit matrices '
                         f'of one shape, got {tuple(logits_S.shape)} and '
                         f'{tuple(logits_T.shape)}')
    return _RowwiseKLSum.apply(logits_S, logits_T.detach())
