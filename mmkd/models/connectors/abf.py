"""Attention based fusion (ABF): one level of ReviewKD's review path."""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from torch import Tensor
from torch.autograd.function import once_differentiable

from mmkd.registry import MODELS


def _as_size(size: Optional[Sequence[int]]) -> Optional[Tuple[int, int]]:
    """Normalise ``None`` / ``int`` / ``(H, W)`` to ``None`` or ``(H, W)``."""
    if size is None:
        return None
    if isinstance(size, int):
        return (size, size)
    size = tuple(int(s) for s in size)
    if len(size) != 2:
        raise ValueError(f'a spatial size must be an int or (H, W), '
                         f'got {size}')
    return size


@MODELS.register_module()
class ABF(BaseModule):
    """Attention based fusion of ReviewKD (Chen et al., CVPR 2021).

    One level of the review path (paper Sec. 3.3, Fig. 3(a)): the student
    feature of this level is projected to ``mid_channels``; if ``fuse``, it
    is fused with the residual coming from the deeper level by two spatial
    attention maps predicted from both; the fused map (optionally resized to
    the teacher's size) is the residual handed to the next shallower level,
    and a 3x3 conv maps it to the teacher's width.

    Computation (as the official code, ``ABF`` in ``CIFAR-100/model/
    reviewkd.py`` and ``Detection/model/kd_trans.py``)::

        x = BN(Conv1x1(x))                           # (N, mid, h, w), no ReLU
        if fuse:
            y = nearest_resize(y, (h, w))            # deeper residual
            a = sigmoid(Conv1x1_bias(cat[x, y]))     # (N, 2, h, w)
            x = x * a[:, 0:1] + y * a[:, 1:2]
        if out_size is not None and out_size != (h, w):
            x = nearest_resize(x, out_size)
        out = BN(Conv3x3(x))                         # (N, out, H_t, W_t)
        return out, x

    Notes (paper vs code):
        * The two gates are independent sigmoids of one 1x1 conv (with
          bias), not a softmax: they need not sum to 1.
        * The residual is resized to this level's ``(h, w)`` as in the
          Detection code, so non-square maps work; the CIFAR code resizes to
          a square ``(shape, shape)`` given from outside, which is the same
          for the square CIFAR maps.
        * The residual returned is the fused mid-width map *after* the
          optional resize and *before* ``conv2``.
        * Init as the authors': ``kaiming_uniform_(a=1)`` on the weights of
          the 1x1 and 3x3 convs; BN and ``att_conv`` keep PyTorch defaults.
          Keys mirror the official state dict (``conv1.0``, ``conv1.1``,
          ``conv2.0``, ``conv2.1``, ``att_conv.0``).
        * The BN over a (N, C, 1, 1) input (the pooled level) needs more than
          one sample per device in training.
        * On channels-last maps (:class:`ReviewKDConnector`'s default) the
          fusion runs as :func:`gated_sum`: the same function without the
          concatenated map (``att_conv`` keeps its parameters and keys).

    Args:
        in_channels (int): Channels of the student feature of this level.
        mid_channels (int): Channels of the fused (residual) maps.
        out_channels (int): Channels of the teacher feature of this level.
        fuse (bool): Whether to fuse a residual from the deeper level (False
            for the deepest level).
        norm_cfg (dict): Norm layer config. Defaults to ``dict(type='BN')``.
        init_cfg (dict, optional): MMEngine init config. Defaults to None
            (the authors' init, applied at construction).
    """

    def __init__(self,
                 in_channels: int,
                 mid_channels: int,
                 out_channels: int,
                 fuse: bool,
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.in_channels = in_channels
        self.mid_channels = mid_channels
        self.out_channels = out_channels
        self.fuse = fuse
        self.conv1 = nn.Sequential(
            nn.Conv2d(in_channels, mid_channels, kernel_size=1, bias=False),
            build_norm_layer(norm_cfg, mid_channels)[1])
        self.conv2 = nn.Sequential(
            nn.Conv2d(
                mid_channels,
                out_channels,
                kernel_size=3,
                stride=1,
                padding=1,
                bias=False),
            build_norm_layer(norm_cfg, out_channels)[1])
        if fuse:
            self.att_conv = nn.Sequential(
                nn.Conv2d(2 * mid_channels, 2, kernel_size=1, bias=True),
                nn.Sigmoid())
        else:
            self.att_conv = None
        nn.init.kaiming_uniform_(self.conv1[0].weight, a=1)
        nn.init.kaiming_uniform_(self.conv2[0].weight, a=1)

    def forward(self,
                x: Tensor,
                residual: Optional[Tensor] = None,
                out_size: Optional[Sequence[int]] = None
                ) -> Tuple[Tensor, Tensor]:
        """Fuse one level.

        Args:
            x (Tensor): Student feature of this level, (N, C_in, h, w).
            residual (Tensor, optional): Residual from the deeper level,
                (N, C_mid, h', w'); required iff ``fuse``.
            out_size (int | tuple[int, int], optional): Teacher's (H, W) of
                this level; the fused map is resized to it (nearest) when it
                differs from (h, w).

        Returns:
            tuple[Tensor, Tensor]: ``out`` (N, C_out, H, W) to compare with
            the teacher feature, and the residual (N, C_mid, H, W) for the
            next shallower level, where (H, W) = ``out_size`` or (h, w).
        """
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'ABF expects (N, {self.in_channels}, H, W) '
                             f'input, got {tuple(x.shape)}')
        out_size = _as_size(out_size)
        x = self.conv1(x)
        if self.fuse:
            if residual is None:
                raise ValueError('this ABF fuses a residual from the deeper '
                                 'level (fuse=True), but none was given')
            if (residual.dim() != 4 or residual.shape[0] != x.shape[0]
                    or residual.shape[1] != self.mid_channels):
                raise ValueError(
                    f'residual must be (N={x.shape[0]}, '
                    f'{self.mid_channels}, H, W), got {tuple(residual.shape)}')
            if residual.shape[-2:] != x.shape[-2:]:
                residual = F.interpolate(
                    residual, size=tuple(x.shape[-2:]), mode='nearest')
            x = self._fuse(x, residual)
        elif residual is not None:
            raise ValueError('this ABF has no fusion (fuse=False, the deepest '
                             'level), but a residual was given')
        if out_size is not None and tuple(x.shape[-2:]) != out_size:
            x = F.interpolate(x, size=out_size, mode='nearest')
        return self.conv2(x), x

    def _fuse(self, x: Tensor, residual: Tensor) -> Tensor:
        """``x * a[:, 0:1] + residual * a[:, 1:2]`` with ``a =
        att_conv(cat[x, residual])``; on channels-last maps with the default
        gate (a 1x1 conv with bias, then a sigmoid) by :func:`gated_sum`."""
        conv, act = self.att_conv[0], self.att_conv[-1]
        if (len(self.att_conv) == 2 and type(act) is nn.Sigmoid
                and type(conv) is nn.Conv2d and conv.bias is not None
                and conv.kernel_size == (1, 1) and conv.stride == (1, 1)
                and conv.padding == (0, 0) and conv.dilation == (1, 1)
                and conv.groups == 1 and _channels_last(x)
                and _channels_last(residual)
                and x.dtype == residual.dtype == conv.weight.dtype
                and not torch.is_autocast_enabled(x.device.type)):
            return gated_sum(x, residual, conv.weight, conv.bias)
        gates = self.att_conv(torch.cat([x, residual], dim=1))
        return x * gates[:, 0:1] + residual * gates[:, 1:2]


def _channels_last(t: Tensor) -> bool:
    return t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last)


def _rows(t: Tensor) -> Tensor:
    """The ``(B * H * W, C)`` matrix of a 4-D map (a view when the map is
    channels-last, else a copy)."""
    return t.permute(0, 2, 3, 1).reshape(-1, t.shape[1])


def _as_map(rows: Tensor, like: Tensor) -> Tensor:
    """``(B * H * W, C)`` rows back to a channels-last ``(B, C, H, W)``."""
    b, c, h, w = like.shape
    return rows.view(b, h, w, c).permute(0, 3, 1, 2)


class _GatedSum(torch.autograd.Function):
    """ABF's attention fusion on ``(B * H * W, C)`` rows (see
    :func:`gated_sum`); forward and backward without the concatenation, the
    2-channel gate maps or a product map per input."""

    @staticmethod
    def forward(ctx, x: Tensor, y: Tensor, weight: Tensor,
                bias: Tensor) -> Tensor:
        c = x.shape[1]
        rx, ry = _rows(x), _rows(y)
        w = weight.reshape(2, 2 * c)
        gates = torch.addmm(bias, rx, w[:, :c].t()).addmm_(ry, w[:, c:].t())
        gates = gates.sigmoid_()  # (BHW, 2)
        out = torch.mul(rx, gates[:, 0:1]).addcmul_(ry, gates[:, 1:2])
        ctx.save_for_backward(x, y, weight, gates)
        return _as_map(out, x)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        x, y, weight, gates = ctx.saved_tensors
        c = x.shape[1]
        rx, ry, g = _rows(x), _rows(y), _rows(grad)
        w = weight.reshape(2, 2 * c)
        # d loss / d gate_k = sum_c grad * input_k; through the sigmoid
        # (row-wise dot products, without a (BHW, C) product map)
        d_gates = torch.stack(
            [torch.einsum('ij,ij->i', g, rx),
             torch.einsum('ij,ij->i', g, ry)], 1)
        d_logits = d_gates.mul_(gates * (1 - gates))  # (BHW, 2)
        grad_x = grad_y = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = _as_map(
                torch.mul(g, gates[:, 0:1]).addmm_(d_logits, w[:, :c]), x)
        if ctx.needs_input_grad[1]:
            grad_y = _as_map(
                torch.mul(g, gates[:, 1:2]).addmm_(d_logits, w[:, c:]), y)
        if ctx.needs_input_grad[2]:
            grad_w = torch.cat(
                [d_logits.t().mm(rx), d_logits.t().mm(ry)], 1).view_as(weight)
        if ctx.needs_input_grad[3]:
            grad_b = d_logits.sum(0)
        return grad_x, grad_y, grad_w, grad_b


def gated_sum(x: Tensor, y: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """ABF's fusion ``x * a_0 + y * a_1`` with ``a = sigmoid(conv1x1(cat[x,
    y]; weight, bias))`` (ReviewKD Sec. 3.3), without the concatenation.

    Args:
        x (Tensor): (B, C, H, W), channels-last.
        y (Tensor): (B, C, H, W), channels-last.
        weight (Tensor): (2, 2C, 1, 1), the gate conv's weight (the first
            ``C`` input channels act on ``x``).
        bias (Tensor): (2, ), its bias.

    Returns:
        Tensor: (B, C, H, W), channels-last.
    """
    return _GatedSum.apply(x, y, weight, bias)
