"""Memory-format helpers that keep every gradient in the format of its map:
a batch-norm or ReLU backward that mixes a channels-last input with a
contiguous gradient (or the reverse) runs several times slower on CPU."""
import torch
import torch.nn.functional as F
from torch import Tensor


def is_channels_last(x: Tensor) -> bool:
    """Whether a 4-D ``x`` is channels-last and not also contiguous."""
    return (x.dim() == 4 and not x.is_contiguous()
            and x.is_contiguous(memory_format=torch.channels_last))


class _ToChannelsLast(torch.autograd.Function):
    """A channels-last copy whose gradient is handed back contiguous (the
    input's format; see :func:`to_channels_last`)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        return x.contiguous(memory_format=torch.channels_last)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return grad.contiguous()


def to_channels_last(x: Tensor) -> Tensor:
    """``x`` in channels-last format. A contiguous ``x`` (a student feature)
    gets its gradient back contiguous, so the student's backward does not
    mix memory formats; otherwise as
    ``x.contiguous(memory_format=torch.channels_last)``."""
    if (x.dim() == 4 and x.is_contiguous()
            and not x.is_contiguous(memory_format=torch.channels_last)):
        return _ToChannelsLast.apply(x)
    return x.contiguous(memory_format=torch.channels_last)


def global_avg_pool(x: Tensor) -> Tensor:
    """``adaptive_avg_pool2d(x, 1)`` as ``(N, C)``; on a channels-last map
    the mean of its ``(N, H, W, C)`` view (the same values; the gradient
    stays channels-last)."""
    if is_channels_last(x):
        return x.permute(0, 2, 3, 1).mean(dim=(1, 2))
    return F.adaptive_avg_pool2d(x, 1).flatten(1)
