"""Building blocks of the FRSKD self-teachers (``BiFPNc`` and ``BiFPN``).

They restate ``classification/models/utils.py`` (``DepthConvBlock``,
``MaxPool2dStaticSamePadding``) and ``BiFPN_layer`` of the official FRSKD code
(MingiJi/FRSKD, see docs/en/methods.md#frskd-bifpnc).

Initialisation: the authors use PyTorch's defaults everywhere (conv
``kaiming_uniform_(a=sqrt(5))``, BN weight 1 / bias 0, fusion weights 1).
mmcv's ``ConvModule`` would re-initialise its conv with ``kaiming_init`` in its
``init_weights()``, which the Runner calls through ``BaseModule.init_weights``,
so the blocks here are built from plain ``nn.Conv2d`` plus mmcv's
``build_norm_layer`` / ``build_activation_layer`` (norm and activation stay
configurable, e.g. SyncBN) and keep the PyTorch default initialisation.
"""
import math
from collections import OrderedDict
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmengine.model import BaseModule
from torch import Tensor

DepthCfg = Union[int, Sequence[int]]


def _parse_depth(depth: DepthCfg) -> Tuple[int, int, int]:
    """Return ``(lat, up, down)`` depths from an int or a 3-sequence."""
    if isinstance(depth, int):
        depth = (depth, ) * 3
    depth = tuple(depth)
    if len(depth) != 3 or not all(isinstance(d, int) and d >= 1
                                  for d in depth):
        raise ValueError('depth must be a positive int or 3 positive ints '
                         f'(lat, up, down), got {depth}')
    return depth


class PointwiseConvBlock(nn.Sequential):
    """``Conv1x1(bias=False) -> BN -> ReLU`` (``DepthConvBlock`` with k=1).

    The official block takes a ``depth`` argument that it ignores for k=1;
    this block has none.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        norm_cfg (dict): Norm layer config. Defaults to ``dict(type='BN')``.
        act_cfg (dict): Activation config. Defaults to ``dict(type='ReLU')``.

    Shape:
        (B, in_channels, H, W) -> (B, out_channels, H, W), post-activation.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='ReLU')) -> None:
        super().__init__(
            OrderedDict([
                ('conv', nn.Conv2d(in_channels, out_channels, 1, bias=False)),
                ('bn', build_norm_layer(norm_cfg, out_channels)[1]),
                ('act', build_activation_layer(act_cfg)),
            ]))


class DepthwiseSeparableConvBlock(nn.Sequential):
    """Stack of depthwise-separable 3x3 convs ending in BN (``DepthConvBlock``
    with k=3).

    ``units[0] = DW3x3(in, groups=in) -> PW1x1(in -> out) -> BN``, followed by
    ``depth - 1`` units ``ReLU -> DW3x3(out) -> PW1x1(out -> out) -> BN``.
    Every conv has no bias. There is **no** activation at the end: the output
    is pre-activation (FRSKD applies ReLU where the output is consumed).

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        depth (int): Number of separable units. Defaults to 2.
        kernel_size (int): Depthwise kernel size (odd). Defaults to 3.
        norm_cfg (dict): Norm layer config. Defaults to ``dict(type='BN')``.
        act_cfg (dict): Activation between units. Defaults to ReLU.

    Shape:
        (B, in_channels, H, W) -> (B, out_channels, H, W), pre-activation.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 depth: int = 2,
                 kernel_size: int = 3,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='ReLU')) -> None:
        if depth < 1:
            raise ValueError(f'depth must be >= 1, got {depth}')
        units = []
        for i in range(depth):
            cin = in_channels if i == 0 else out_channels
            layers = OrderedDict()
            if i > 0:
                layers['act'] = build_activation_layer(act_cfg)
            layers['dw'] = nn.Conv2d(
                cin,
                cin,
                kernel_size,
                padding=kernel_size // 2,
                groups=cin,
                bias=False)
            layers['pw'] = nn.Conv2d(cin, out_channels, 1, bias=False)
            layers['bn'] = build_norm_layer(norm_cfg, out_channels)[1]
            units.append(nn.Sequential(layers))
        super().__init__(*units)


class MaxPool2dTFSame(nn.Module):
    """Max-pool with TensorFlow "SAME" padding (FRSKD's
    ``MaxPool2dStaticSamePadding``).

    For each spatial side of size ``x`` the total padding is
    ``extra = (ceil(x / s) - 1) * s - x + k``, split ``floor(extra / 2)``
    before and the rest after; then ``MaxPool2d(k, s, padding=0)``. The output
    size is ``ceil(x / s)`` for any (odd, even, non-square) input. As in the
    official code the padding is **zeros** (not -inf), harmless for the
    post-ReLU inputs FRSKD feeds it.

    Args:
        kernel_size (int): Pool size. Defaults to 3.
        stride (int): Pool stride. Defaults to 2.

    Shape:
        (B, C, H, W) -> (B, C, ceil(H / stride), ceil(W / stride)).
    """

    def __init__(self, kernel_size: int = 3, stride: int = 2) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride
        self.pool = nn.MaxPool2d(kernel_size, stride, padding=0)

    def pad_sizes(self, h: int, w: int) -> Tuple[int, int, int, int]:
        """Zero padding ``(left, right, top, bottom)`` for an (h, w) input."""

        def split(size: int) -> Tuple[int, int]:
            extra = (math.ceil(size / self.stride) - 1) * self.stride \
                - size + self.kernel_size
            extra = max(extra, 0)
            return extra // 2, extra - extra // 2

        left, right = split(w)
        top, bottom = split(h)
        return left, right, top, bottom

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(F.pad(x, list(self.pad_sizes(*x.shape[-2:]))))

    def forward_nonnegative(self, x: Tensor) -> Tensor:
        """``forward(x)`` for ``x >= 0`` (post-ReLU), without the padded
        copy.

        A max-pool with implicit (``-inf``) padding ``before`` on both sides
        and ``ceil_mode`` adds the one extra pixel at the end where TF-SAME
        pads ``before + 1``; every window holds at least one pixel of ``x``,
        so for ``x >= 0`` the zero padding never changes a maximum (nor
        which pixel gets the gradient: ties at 0 get none through the ReLU
        before). Other kernel/stride combinations use :meth:`forward`.
        """
        left, right, top, bottom = self.pad_sizes(*x.shape[-2:])
        k, s = self.kernel_size, self.stride

        def torch_size(size: int, pad: int) -> int:  # ceil_mode=True
            out = math.ceil((size + 2 * pad - k) / s) + 1
            return out - 1 if (out - 1) * s >= size + pad else out

        h, w = x.shape[-2:]
        if (right - left in (0, 1) and bottom - top in (0, 1)
                and max(left, top) <= k // 2
                and torch_size(h, top) == math.ceil(h / s)
                and torch_size(w, left) == math.ceil(w / s)):
            return F.max_pool2d(x, k, s, padding=(top, left), ceil_mode=True)
        return self.forward(x)


class FastNormalizedFusion(nn.Module):
    """Fast normalised fusion of EfficientDet, as FRSKD codes it.

    ``w = relu(weight); w = w / (sum(w) + eps); out = sum_j w_j * x_j``
    with ``weight`` initialised to ones, so the initial normalised weights are
    ``1 / (k + eps)`` for ``k`` inputs. FRSKD uses ``eps = 1e-6``
    (EfficientDet uses 1e-4). The inputs are combined as given: the caller
    applies FRSKD's ``relu`` to them.

    Args:
        num_inputs (int): Number of fused tensors ``k``.
        eps (float): Added to the weight sum. Defaults to 1e-6.
    """

    def __init__(self, num_inputs: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.num_inputs = num_inputs
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_inputs))

    def normalized_weights(self) -> Tensor:
        """The ``k`` fusion weights after ReLU and normalisation."""
        w = F.relu(self.weight)
        return w / (w.sum() + self.eps)

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        if len(inputs) != self.num_inputs:
            raise ValueError(f'expected {self.num_inputs} inputs to fuse, '
                             f'got {len(inputs)}')
        w = self.normalized_weights()
        out = w[0] * inputs[0]
        for j in range(1, self.num_inputs):
            out = out + w[j] * inputs[j]
        return out


class BiFPNLayer(BaseModule):
    """One bidirectional FPN layer of FRSKD (``BiFPN_layer``),
    docs/en/methods.md#frskd-bifpnc.

    With ``F_i`` the inputs (level 0 = highest resolution), ``n`` levels,
    ``relu = F.relu`` and ``Fuse`` a :class:`FastNormalizedFusion`::

        B_i = lat_conv2[i-1](relu(F_i))                  i = 1..n-1
        L_i = lat_conv[i](relu(F_i))  (or F_i without lateral convs)
        P_{n-1} = L_{n-1}
        P_i = up_conv[i](Fuse(relu(L_i), up_sample[i](relu(P_{i+1}))))
        T_0 = P_0
        T_i = down_conv[i-1](Fuse(relu(B_i), relu(P_i),
                                  down_sample[i-1](relu(T_{i-1}))))   i < n-1
        T_{n-1} = down_conv[n-2](Fuse(relu(B_{n-1}),
                                      down_sample[n-2](relu(T_{n-2}))))

    and returns ``[relu(T_i)]`` (or ``[T_i]`` if ``preact``). The top level of
    the top-down path and the bottom level of the bottom-up path get no conv
    node: they feed the next level directly (the paper's "diagonal" links).

    ``up_sample[i]`` is nearest x2 upsampling and ``down_sample[i-1]`` the
    TF-SAME 3x3/2 max-pool; with ``resize_convs=True`` (``BiFPNc``) each is
    followed by a :class:`PointwiseConvBlock` changing the channels
    (``out_{i+1} -> out_i`` resp. ``out_{i-1} -> out_i``); without
    (``BiFPN``) all levels must have the same width.

    Args:
        in_channels (Sequence[int]): Channels ``c_i`` of the inputs.
        out_channels (Sequence[int]): Channels ``d_i`` of the outputs.
        depth (int | Sequence[int]): ``(lat, up, down)`` depths. The lateral
            depth is unused (FRSKD's 1x1 blocks ignore it). Defaults to 2.
        resize_convs (bool): 1x1 conv blocks after the resizes.
        with_lateral (bool): Build ``lat_conv`` (FRSKD's ``first_time``).
            Without it ``in_channels`` must equal ``out_channels``.
        eps (float): Epsilon of the fusion. Defaults to 1e-6.
        norm_cfg (dict): Norm config of all blocks. Defaults to BN.
        init_cfg (dict, optional): Init config. Defaults to None (PyTorch
            default init, as the authors).
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 out_channels: Sequence[int],
                 depth: DepthCfg = 2,
                 resize_convs: bool = True,
                 with_lateral: bool = True,
                 eps: float = 1e-6,
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        in_channels, out_channels = list(in_channels), list(out_channels)
        n = len(in_channels)
        if n < 1 or len(out_channels) != n:
            raise ValueError('in_channels and out_channels must be non-empty '
                             f'and of equal length, got {in_channels} and '
                             f'{out_channels}')
        if not with_lateral and in_channels != out_channels:
            raise ValueError('without lateral convs in_channels must equal '
                             f'out_channels, got {in_channels} and '
                             f'{out_channels}')
        if not resize_convs and len(set(out_channels)) > 1:
            raise ValueError('without resize convs all levels must have the '
                             f'same width, got {out_channels}')
        _, up_depth, down_depth = _parse_depth(depth)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.num_levels = n
        self.with_lateral = with_lateral

        self.lat_conv = nn.ModuleList()
        self.lat_conv2 = nn.ModuleList()
        self.up_sample = nn.ModuleList()
        self.up_conv = nn.ModuleList()
        self.up_fusion = nn.ModuleList()
        self.down_sample = nn.ModuleList()
        self.down_conv = nn.ModuleList()
        self.down_fusion = nn.ModuleList()
        for i, (c, d) in enumerate(zip(in_channels, out_channels)):
            if with_lateral:
                self.lat_conv.append(PointwiseConvBlock(c, d, norm_cfg))
            if i < n - 1:
                up = [nn.Upsample(scale_factor=2, mode='nearest')]
                if resize_convs:
                    up.append(
                        PointwiseConvBlock(out_channels[i + 1], d, norm_cfg))
                self.up_sample.append(nn.Sequential(*up))
                self.up_conv.append(
                    DepthwiseSeparableConvBlock(
                        d, d, up_depth, norm_cfg=norm_cfg))
                self.up_fusion.append(FastNormalizedFusion(2, eps))
            if i > 0:
                self.lat_conv2.append(PointwiseConvBlock(c, d, norm_cfg))
                down = [MaxPool2dTFSame(3, 2)]
                if resize_convs:
                    down.append(
                        PointwiseConvBlock(out_channels[i - 1], d, norm_cfg))
                self.down_sample.append(nn.Sequential(*down))
                self.down_conv.append(
                    DepthwiseSeparableConvBlock(
                        d, d, down_depth, norm_cfg=norm_cfg))
                self.down_fusion.append(
                    FastNormalizedFusion(3 if i < n - 1 else 2, eps))

    def forward(self,
                inputs: Sequence[Tensor],
                preact: bool = False) -> List[Tensor]:
        """Fuse ``n`` levels.

        Args:
            inputs (Sequence[Tensor]): ``n`` maps ``(B, c_i, H_i, W_i)``,
                shallow to deep, with ``H_i = 2 * H_{i+1}`` and
                ``W_i = 2 * W_{i+1}`` (checked by the callers).
            preact (bool): Return ``T_i`` instead of ``relu(T_i)``.

        Returns:
            list[Tensor]: ``n`` maps ``(B, d_i, H_i, W_i)``.

        The computation is arranged for speed; the function (outputs,
        gradients, BN running statistics) is the one in the class docstring:

        * every ReLU is applied once per tensor (the 1x1 blocks end in ReLU
          already, and ``relu(relu(x)) == relu(x)`` with the same gradient);
        * a fusion weight ``w >= 0`` multiplying the output of a 1x1
          conv-BN-ReLU block is folded into that block's BN affine
          (``w * relu(bn(z)) == relu(bn_{w*gamma, w*beta}(z))``);
        * the up-resize block runs *before* the nearest x2 upsampling (a 1x1
          conv, BN with batch statistics and ReLU commute with it; the
          running variance is updated with the upsampled pixel count), and
          the upsampled map is never materialised: it is broadcast into the
          fusion sum;
        * the TF-SAME max-pool of a post-ReLU map is a max-pool with
          implicit padding (zero padding cannot win a window of values
          ``>= 0``);
        * on channels-last maps the 1x1 convs are matrix products
          (:func:`conv1x1`).

        Tests compare all of it, in training mode and float64, with the
        sub-modules called in the documented order.
        """
        n = self.num_levels
        relu_in = [F.relu(x) for x in inputs]
        up_w = [f.normalized_weights() for f in self.up_fusion]
        down_w = [f.normalized_weights() for f in self.down_fusion]

        # L_i, post-ReLU. L_i (i < n-1) only enters the up fusion at level
        # i, so it is computed there already scaled by its fusion weight.
        top_lat = (self.lat_conv[n - 1](relu_in[n - 1])
                   if self.with_lateral else inputs[n - 1])

        # top-down: P_{n-1} = L_{n-1}, no conv node on the top level;
        # relu_p[i] = relu(P_i)
        top_down: List[Optional[Tensor]] = [None] * n
        relu_p: List[Optional[Tensor]] = [None] * n
        top_down[n - 1] = top_lat
        relu_p[n - 1] = top_lat if self.with_lateral else relu_in[n - 1]
        for i in range(n - 2, -1, -1):
            fused = self._up_fusion(i, relu_in[i], relu_p[i + 1], up_w[i])
            top_down[i] = separable(self.up_conv[i], fused)
            relu_p[i] = F.relu(top_down[i])

        # bottom-up: T_0 = P_0, no conv node on the bottom level;
        # relu_t[i] = relu(T_i)
        outs = [top_down[0]]
        relu_t = [relu_p[0]]
        for i in range(1, n):
            w = down_w[i - 1]
            down = self.down_sample[i - 1]
            pooled = down[0].forward_nonnegative(relu_t[i - 1])
            # w_0 * B_i (B_i = lat_conv2(relu(F_i)) is post-ReLU)
            fused = scaled_pointwise(self.lat_conv2[i - 1], relu_in[i], w[0])
            if len(down) > 1:  # w_last * resize(pool(relu(T_{i-1})))
                fused = fused + scaled_pointwise(down[1], pooled, w[-1])
            else:
                fused = torch.addcmul(fused, w[-1], pooled)
            if i < n - 1:  # + w_1 * relu(P_i)
                fused = torch.addcmul(fused, w[1], relu_p[i])
            outs.append(separable(self.down_conv[i - 1], fused))
            if i < n - 1 or not preact:
                relu_t.append(F.relu(outs[i]))

        if preact:
            return outs
        return relu_t

    def _up_fusion(self, i: int, relu_in: Tensor, above: Tensor,
                   w: Tensor) -> Tensor:
        """``w_0 * relu(L_i) + w_1 * up_sample[i](relu(P_{i+1}))``.

        ``relu_in`` is ``relu(F_i)``, ``above`` is ``relu(P_{i+1})`` at
        level ``i + 1``'s size and ``w`` the two fusion weights.
        """
        up = self.up_sample[i]
        if len(up) == 1:  # no resize conv: w_1 * nearest_x2(above)
            small = w[1] * above
        elif _fusable(up[1]) and not (up[1].training and
                                      _pixels_per_channel(above) < 2):
            # the block before the upsampling, its running variance as if
            # it ran after it (4 pixels for each of ``above``)
            small = scaled_pointwise(up[1], above, w[1], repeat=4)
        else:  # another norm layer: the block after the upsampling
            small = None
        if small is None:
            big = w[1] * up(above)
        if self.with_lateral:
            lat = scaled_pointwise(self.lat_conv[i], relu_in, w[0])
            if small is None:
                return lat + big
            return add_upsampled(lat, small)
        if small is None:
            return torch.addcmul(big, w[0], relu_in)
        return add_upsampled(relu_in, small, w[0])


def _pixels_per_channel(x: Tensor) -> int:
    return x.numel() // max(x.shape[1], 1)


def _fusable(block: nn.Module) -> bool:
    """Whether a :class:`PointwiseConvBlock` has the plain BN and ReLU that
    :func:`scaled_pointwise` folds (SyncBN, GN... take the module path)."""
    return (type(block.bn) is nn.BatchNorm2d and block.bn.affine
            and type(block.act) is nn.ReLU)


def conv1x1(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """``conv(x)``; for a plain 1x1 conv and a channels-last ``x``, as the
    matrix product of its ``(B * H * W, C)`` view (on CPU faster than
    oneDNN's 1x1 convolution on the small, wide maps of the deep levels,
    e.g. 1.4-1.6x at 4x4 with 512-1024 channels, forward + backward)."""
    if (conv.kernel_size == (1, 1) and conv.stride == (1, 1)
            and conv.padding == (0, 0) and conv.dilation == (1, 1)
            and conv.groups == 1 and x.dim() == 4
            and x.is_contiguous(memory_format=torch.channels_last)):
        out = F.linear(x.permute(0, 2, 3, 1), conv.weight.flatten(1),
                       conv.bias)
        return out.permute(0, 3, 1, 2)
    return conv(x)


def separable(block: 'DepthwiseSeparableConvBlock', x: Tensor) -> Tensor:
    """``block(x)`` with its pointwise convs by :func:`conv1x1` and its
    ReLUs in place (on a BN output, which no backward needs)."""
    for unit in block:
        if hasattr(unit, 'act'):
            x = F.relu_(x) if type(unit.act) is nn.ReLU else unit.act(x)
        x = conv1x1(unit.pw, unit.dw(x))
        x = unit.bn(x)
    return x


def batch_norm(bn: nn.BatchNorm2d,
               x: Tensor,
               weight: Tensor,
               bias: Tensor,
               repeat: int = 1) -> Tensor:
    """``bn(x)`` with the affine ``(weight, bias)`` instead of ``bn``'s.

    Restates ``nn.BatchNorm2d.forward`` (momentum, cumulative average,
    ``num_batches_tracked``, eval mode). With ``repeat = r`` the running
    variance is updated as if every pixel of ``x`` appeared ``r`` times
    (``x`` is a map before a nearest upsampling by ``r`` pixels): the batch
    mean and the biased variance do not change under such a repetition,
    only the unbiased variance that goes into the running average does,
    from ``v * N / (N - 1)`` to ``v * rN / (rN - 1)``.
    """
    factor = 0.0 if bn.momentum is None else bn.momentum
    if bn.training and bn.track_running_stats \
            and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        if bn.momentum is None:
            factor = 1.0 / float(bn.num_batches_tracked)
    use_batch = bn.training or (bn.running_mean is None
                                and bn.running_var is None)
    track = not bn.training or bn.track_running_stats
    running_var = bn.running_var if track else None
    correct = (repeat != 1 and use_batch and running_var is not None
               and factor != 0)
    # With the correction F.batch_norm updates a copy: autograd keeps the
    # running-variance tensor it was given, which must not change before
    # the backward.
    new_var = running_var.clone() if correct else running_var
    out = F.batch_norm(x, bn.running_mean if track else None, new_var,
                       weight, bias, use_batch, factor, bn.eps)
    if correct:
        n = _pixels_per_channel(x)
        ratio = repeat * (n - 1) / (repeat * n - 1)
        with torch.no_grad():
            # new - (1 - f) * old = f * v_N; add f * v_N * (ratio - 1)
            running_var.copy_(new_var + (new_var -
                                         (1 - factor) * running_var) *
                              (ratio - 1))
    return out


def scaled_pointwise(block: 'PointwiseConvBlock',
                     x: Tensor,
                     scale: Tensor,
                     repeat: int = 1) -> Tensor:
    """``scale * block(x)`` for a 0-dim ``scale >= 0`` (a fusion weight).

    With a plain BN and ReLU the scale is folded into the BN affine (one
    pass over the map less, forward and backward); ``repeat`` is passed to
    :func:`batch_norm` (only meaningful in that case).
    """
    if not _fusable(block):
        return scale * block(x)
    bn = block.bn
    z = conv1x1(block.conv, x)
    z = batch_norm(bn, z, bn.weight * scale, bn.bias * scale, repeat)
    return F.relu(z, inplace=True)


class _AddUpsampled(torch.autograd.Function):
    """``big + nearest_x2(small)`` as one broadcast sum; the gradient of
    ``small`` is the 2x2 sum pool of the output gradient (the backward of
    the nearest upsampling, which a broadcast reduction over the strided
    2x2 dims computes several times slower on CPU)."""

    @staticmethod
    def forward(ctx, big: Tensor, small: Tensor) -> Tensor:
        b, c, h2, w2 = big.shape
        h, w = small.shape[-2:]
        out = big.reshape(b, c, h, 2, w, 2) + small[:, :, :, None, :, None]
        return out.reshape(b, c, h2, w2)

    @staticmethod
    def backward(ctx, grad: Tensor):
        grad_small = None
        if ctx.needs_input_grad[1]:
            grad_small = F.avg_pool2d(grad, 2, divisor_override=1)
        return grad, grad_small


def add_upsampled(big: Tensor,
                  small: Tensor,
                  scale: Optional[Tensor] = None) -> Tensor:
    """``big + nearest_x2(small)`` (``scale * big + ...`` with a 0-dim
    ``scale``) without materialising the upsampled map.

    ``big`` is ``(B, C, 2h, 2w)`` and ``small`` ``(B, C, h, w)``; the result
    has ``big``'s memory format.
    """
    h2, w2 = big.shape[-2:]
    h, w = small.shape[-2:]
    if (h2, w2) != (2 * h, 2 * w) or big.shape[:2] != small.shape[:2]:
        raise ValueError(f'add_upsampled: {tuple(big.shape)} is not twice '
                         f'{tuple(small.shape)}')
    if scale is not None:
        big = scale * big
    return _AddUpsampled.apply(big, small)


def check_in_channels(in_channels: Union[int, Sequence[int]]) -> List[int]:
    """``in_channels`` as a non-empty list of positive ints (an int is one
    level), or a ValueError."""
    if isinstance(in_channels, int):
        in_channels = [in_channels]
    in_channels = [int(c) for c in in_channels]
    if not in_channels or min(in_channels) < 1:
        raise ValueError(
            f'in_channels must be positive ints, got {in_channels}')
    return in_channels


def check_pyramid(x: Union[Tensor, Sequence[Tensor]],
                  in_channels: Sequence[int],
                  name: str,
                  halving: bool = True) -> List[Tensor]:
    """Return ``x`` as a list, or raise a ValueError unless it is a pyramid
    the BiFPNs accept (a single tensor is accepted for one level).

    ``x`` must be a list/tuple of ``len(in_channels)`` 4-D tensors with the
    given channels and one batch size, given shallow (finest) to deep. With
    ``halving`` each level must be exactly half the height and width of the
    previous one (nearest x2 upsampling must map level ``i+1`` onto level
    ``i``); ``BiFPNSeg`` resizes between levels and needs no such sizes.
    """
    if isinstance(x, Tensor) and len(in_channels) == 1:
        x = [x]
    if isinstance(x, Tensor) or not isinstance(x, (list, tuple)):
        raise ValueError(f'{name} expects a list of {len(in_channels)} '
                         f'tensors (shallow to deep), got {type(x).__name__}')
    if len(x) != len(in_channels):
        raise ValueError(f'{name} expects {len(in_channels)} levels '
                         f'(in_channels={list(in_channels)}), got {len(x)}')
    for i, (f, c) in enumerate(zip(x, in_channels)):
        if not isinstance(f, Tensor) or f.dim() != 4:
            raise ValueError(f'{name}: level {i} must be a (B, C, H, W) '
                             f'tensor, got {getattr(f, "shape", type(f))}')
        if f.shape[1] != c:
            raise ValueError(f'{name}: level {i} has {f.shape[1]} channels, '
                             f'expected in_channels[{i}]={c}')
        if f.shape[0] != x[0].shape[0]:
            raise ValueError(f'{name}: level {i} has batch size {f.shape[0]}'
                             f', level 0 has {x[0].shape[0]}')
        if halving and i > 0:
            prev = tuple(x[i - 1].shape[-2:])
            cur = tuple(f.shape[-2:])
            if prev != (2 * cur[0], 2 * cur[1]):
                raise ValueError(
                    f'{name}: each level must be exactly half the spatial '
                    f'size of the previous one, got level {i - 1} {prev} '
                    f'and level {i} {cur}')
    return list(x)
