"""CIFAR ShuffleNetV1/V2 of the CRD/ReviewKD code (students of ReviewKD)."""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from mmpretrain.models.utils import channel_shuffle
from torch import Tensor

from mmkd.registry import MODELS


def _norm(norm_cfg: dict, channels: int) -> nn.Module:
    return build_norm_layer(norm_cfg, channels)[1]


def _check_out_indices(out_indices: Sequence[int],
                       num_outs: int) -> Tuple[int, ...]:
    out = tuple(i + num_outs if i < 0 else i for i in out_indices)
    if not all(0 <= i < num_outs for i in out):
        raise ValueError(f'out_indices must be in [{-num_outs}, '
                         f'{num_outs - 1}], got {tuple(out_indices)}')
    return out


class ShuffleV1Unit(BaseModule):
    """ShuffleNetV1 unit as in the CRD/ReviewKD CIFAR code.

    ``pre = bn3(gconv3(relu(bn2(dwconv2(shuffle(relu(bn1(gconv1(x)))))))))
    (+ or cat) shortcut(x)``, ``out = relu(pre)``. Stride 2: the shortcut
    is a 3x3/2 average pool and is concatenated; stride 1: identity, added.
    Unlike the ShuffleNet paper, the official code has a ReLU after the
    depthwise conv; it is kept. ``preact`` (an ``nn.Identity``) outputs the
    pre-ReLU map (the official ``preact``).

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels of the unit (for stride 2 they
            include the ``in_channels`` of the concatenated shortcut).
        stride (int): 1 or 2.
        groups (int): Groups of the 1x1 convs.
        first_group_conv (bool): Whether the first 1x1 conv is grouped
            (False for the very first unit, as the official code).
        norm_cfg (dict): Norm config.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 stride: int,
                 groups: int,
                 first_group_conv: bool = True,
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if stride not in (1, 2):
            raise ValueError(f'stride must be 1 or 2, got {stride}')
        if stride == 1 and in_channels != out_channels:
            raise ValueError('a stride-1 unit keeps the width, got '
                             f'{in_channels} -> {out_channels}')
        self.stride = stride
        branch_channels = out_channels - in_channels if stride == 2 \
            else out_channels
        mid_channels = branch_channels // 4
        if mid_channels <= 0 or mid_channels % groups or \
                branch_channels % groups:
            raise ValueError(
                f'unit {in_channels} -> {out_channels} (stride {stride}): '
                f'its branch width {branch_channels} and bottleneck width '
                f'{mid_channels} must be positive multiples of {groups}')
        self.first_groups = groups if first_group_conv else 1
        self.conv1 = nn.Conv2d(
            in_channels, mid_channels, 1, groups=self.first_groups,
            bias=False)
        self.bn1 = _norm(norm_cfg, mid_channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(
            mid_channels,
            mid_channels,
            3,
            stride=stride,
            padding=1,
            groups=mid_channels,
            bias=False)
        self.bn2 = _norm(norm_cfg, mid_channels)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(
            mid_channels, branch_channels, 1, groups=groups, bias=False)
        self.bn3 = _norm(norm_cfg, branch_channels)
        self.shortcut = nn.Sequential(
            nn.AvgPool2d(3, stride=2, padding=1)) if stride == 2 \
            else nn.Sequential()
        self.preact = nn.Identity()
        self.relu3 = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        if self.first_groups > 1:
            out = channel_shuffle(out, self.first_groups)
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        res = self.shortcut(x)
        pre = torch.cat([out, res], 1) if self.stride == 2 else out + res
        return self.relu3(self.preact(pre))


@MODELS.register_module()
class CIFARShuffleNetV1(BaseBackbone):
    """ShuffleNetV1 for 32x32 inputs, as the CRD/ReviewKD ``ShuffleV1``.

    Zhang et al. (CVPR 2018), CIFAR variant of the CRD/ReviewKD code
    (``CIFAR-100/model/shufflenetv1.py``): a 1x1 conv-BN-ReLU stem (24
    channels, stride 1), then 3 stages of ShuffleNet units whose first unit
    has stride 2, so a 32x32 input gives 16x16, 8x8, 4x4 maps with
    240/480/960 channels (g = 3, 4/8/4 units). Differs from mmpretrain's
    ``ShuffleNetV1`` (ImageNet stem with stride 4). Init: PyTorch defaults,
    as the official code.

    Tap paths (stage ``k`` in 1..3, last unit ``m`` = 3, 7, 3):
        * post-ReLU stage output (official ``f_k``): output of ``layer{k}``.
        * pre-ReLU sum of the last unit (official ``preact`` feature):
          output of ``layer{k}.{m}.preact``.

    Args:
        stage_channels (Sequence[int]): Output channels of the 3 stages.
            Defaults to (240, 480, 960).
        num_blocks (Sequence[int]): Units per stage. Defaults to (4, 8, 4).
        groups (int): Groups of the 1x1 convs. Defaults to 3.
        stem_channels (int): Defaults to 24.
        in_channels (int): Input image channels. Defaults to 3.
        out_indices (Sequence[int]): Stages (0..2) to return.
            Defaults to (2, ).
        norm_cfg (dict): Norm config. Defaults to BN.
        init_cfg (dict, optional): Defaults to None (PyTorch init).
    """

    def __init__(self,
                 stage_channels: Sequence[int] = (240, 480, 960),
                 num_blocks: Sequence[int] = (4, 8, 4),
                 groups: int = 3,
                 stem_channels: int = 24,
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (2, ),
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if len(stage_channels) != 3 or len(num_blocks) != 3:
            raise ValueError('stage_channels and num_blocks need 3 entries')
        self.out_indices = _check_out_indices(out_indices, 3)
        self.stage_channels = list(stage_channels)
        self.conv1 = nn.Conv2d(in_channels, stem_channels, 1, bias=False)
        self.bn1 = _norm(norm_cfg, stem_channels)
        self.relu = nn.ReLU()
        channels = stem_channels
        for i, (width, n) in enumerate(zip(stage_channels, num_blocks)):
            units = []
            for j in range(n):
                units.append(
                    ShuffleV1Unit(
                        channels,
                        width,
                        stride=2 if j == 0 else 1,
                        groups=groups,
                        first_group_conv=not (i == 0 and j == 0),
                        norm_cfg=norm_cfg))
                channels = width
            self.add_module(f'layer{i + 1}', nn.Sequential(*units))

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """(N, C, H, W) -> selected stage outputs, stage ``i`` of shape
        (N, stage_channels[i], H / 2**(i+1), W / 2**(i+1))."""
        x = self.relu(self.bn1(self.conv1(x)))
        outs = []
        for i in range(3):
            x = getattr(self, f'layer{i + 1}')(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)


class ShuffleV2DownUnit(BaseModule):
    """ShuffleNetV2 stride-2 unit as the CRD/ReviewKD code.

    Left: dw3x3/2-BN, 1x1-BN-ReLU; right: 1x1-BN-ReLU, dw3x3/2-BN,
    1x1-BN-ReLU; concat (left, right), channel shuffle (2 groups).
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        mid = out_channels // 2
        self.conv1 = nn.Conv2d(
            in_channels, in_channels, 3, stride=2, padding=1,
            groups=in_channels, bias=False)
        self.bn1 = _norm(norm_cfg, in_channels)
        self.conv2 = nn.Conv2d(in_channels, mid, 1, bias=False)
        self.bn2 = _norm(norm_cfg, mid)
        self.conv3 = nn.Conv2d(in_channels, mid, 1, bias=False)
        self.bn3 = _norm(norm_cfg, mid)
        self.conv4 = nn.Conv2d(
            mid, mid, 3, stride=2, padding=1, groups=mid, bias=False)
        self.bn4 = _norm(norm_cfg, mid)
        self.conv5 = nn.Conv2d(mid, mid, 1, bias=False)
        self.bn5 = _norm(norm_cfg, mid)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        left = self.relu(self.bn2(self.conv2(self.bn1(self.conv1(x)))))
        right = self.relu(self.bn3(self.conv3(x)))
        right = self.relu(self.bn5(self.conv5(self.bn4(self.conv4(right)))))
        return channel_shuffle(torch.cat([left, right], 1), 2)


class ShuffleV2Unit(BaseModule):
    """ShuffleNetV2 stride-1 unit as the CRD/ReviewKD code.

    Split ``x`` into ``x1`` (first half) and ``x2``; ``b = bn3(conv3(bn2(
    dwconv2(relu(bn1(conv1(x2)))))))``; ``pre = cat(x1, b)`` (the official
    ``preact``, output of ``preact``); ``out = shuffle(relu(pre))``. The
    official code applies the ReLU to ``b`` only; both agree because ``x1``
    is a slice of a post-ReLU map (non-negative) inside the network.
    Note that ``pre`` is *before* the channel shuffle, as the official one.
    """

    def __init__(self,
                 channels: int,
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if channels % 2:
            raise ValueError(f'channels must be even, got {channels}')
        c = channels // 2
        self.split = c
        self.conv1 = nn.Conv2d(c, c, 1, bias=False)
        self.bn1 = _norm(norm_cfg, c)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False)
        self.bn2 = _norm(norm_cfg, c)
        self.conv3 = nn.Conv2d(c, c, 1, bias=False)
        self.bn3 = _norm(norm_cfg, c)
        self.preact = nn.Identity()
        self.relu2 = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        x1, x2 = x[:, :self.split], x[:, self.split:]
        b = self.relu1(self.bn1(self.conv1(x2)))
        b = self.bn3(self.conv3(self.bn2(self.conv2(b))))
        pre = self.preact(torch.cat([x1, b], 1))
        return channel_shuffle(self.relu2(pre), 2)


@MODELS.register_module()
class CIFARShuffleNetV2(BaseBackbone):
    """ShuffleNetV2 for 32x32 inputs, as the CRD/ReviewKD ``ShuffleV2``.

    Ma et al. (ECCV 2018), CIFAR variant of the CRD/ReviewKD code
    (``CIFAR-100/model/shufflenetv2.py``): a 1x1 conv-BN-ReLU stem (24
    channels, stride 1, no max-pool), 3 stages of [one stride-2 unit +
    ``num_blocks`` stride-1 units], then a 1x1 conv-BN-ReLU (``conv2``,
    ``bn2``) to the final width. For ``widen_factor=1`` (the ReviewKD
    student) a 32x32 input gives 116x16x16, 232x8x8, 464x4x4 and
    1024x4x4. Differs from mmpretrain's ``ShuffleNetV2`` (ImageNet stem).
    Init: PyTorch defaults, as the official code.

    Outputs: indices 0..2 are the stages, 3 is the final 1x1 conv (the map
    the official code pools into its ``f4``).

    Tap paths (stage ``k`` in 1..3, last unit ``m`` = num_blocks[k-1],
    i.e. 3, 7, 3; unit 0 is the stride-2 unit):
        * stage output (official ``f_k``): output of ``layer{k}``.
        * official ``preact`` feature (unshuffled): output of
          ``layer{k}.{m}.preact``.
        * final 1x1 conv, post-ReLU: output of ``relu``.

    Args:
        widen_factor (float): One of 0.2, 0.3, 0.5, 1.0, 1.5, 2.0 (the
            official table). Defaults to 1.0.
        in_channels (int): Input image channels. Defaults to 3.
        out_indices (Sequence[int]): Outputs (0..3) to return.
            Defaults to (3, ).
        norm_cfg (dict): Norm config. Defaults to BN.
        init_cfg (dict, optional): Defaults to None (PyTorch init).
    """

    arch_settings = {
        0.2: ((40, 80, 160, 512), (3, 3, 3)),
        0.3: ((40, 80, 160, 512), (3, 7, 3)),
        0.5: ((48, 96, 192, 1024), (3, 7, 3)),
        1.0: ((116, 232, 464, 1024), (3, 7, 3)),
        1.5: ((176, 352, 704, 1024), (3, 7, 3)),
        2.0: ((224, 488, 976, 2048), (3, 7, 3)),
    }

    def __init__(self,
                 widen_factor: float = 1.0,
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (3, ),
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if float(widen_factor) not in self.arch_settings:
            raise ValueError(f'widen_factor must be one of '
                             f'{sorted(self.arch_settings)}, got '
                             f'{widen_factor}')
        widths, num_blocks = self.arch_settings[float(widen_factor)]
        self.out_indices = _check_out_indices(out_indices, 4)
        self.stage_channels = list(widths)
        stem_channels = 24
        self.conv1 = nn.Conv2d(in_channels, stem_channels, 1, bias=False)
        self.bn1 = _norm(norm_cfg, stem_channels)
        channels = stem_channels
        for i in range(3):
            units = [ShuffleV2DownUnit(channels, widths[i], norm_cfg)]
            units += [
                ShuffleV2Unit(widths[i], norm_cfg)
                for _ in range(num_blocks[i])
            ]
            channels = widths[i]
            self.add_module(f'layer{i + 1}', nn.Sequential(*units))
        self.conv2 = nn.Conv2d(widths[2], widths[3], 1, bias=False)
        self.bn2 = _norm(norm_cfg, widths[3])
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """(N, C, H, W) -> selected outputs (see class docstring)."""
        x = torch.relu(self.bn1(self.conv1(x)))
        outs = []
        for i in range(3):
            x = getattr(self, f'layer{i + 1}')(x)
            if i in self.out_indices:
                outs.append(x)
        if 3 in self.out_indices:
            outs.append(self.relu(self.bn2(self.conv2(x))))
        return tuple(outs)
