"""Pre-activation Wide ResNet for CIFAR (Zagoruyko & Komodakis, BMVC 2016)."""
from typing import List, Optional, Sequence, Tuple, Union

import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from torch import Tensor

from mmkd.registry import MODELS


class WRNBasicBlock(nn.Module):
    """Pre-activation basic block of the CIFAR WRN.

    ``style='standard'``: ``a = relu1(bn1(x))``; ``style='frskd'`` (no
    ``bn1``, as in FRSKD's ``wrn.py``): ``a = relu1(x)``. Then::

        out = conv2(dropout(relu2(bn2(conv1(a)))))
        return out + (x if in == out and stride == 1 else convShortcut(a))

    The ReLUs are not in-place, so a forward hook on ``bn1`` records the
    pre-ReLU tensor. Attribute names follow the authors' code so that their
    checkpoints load by key.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        stride (int): Stride of ``conv1`` and of the shortcut.
        drop_rate (float): Dropout between the two convs. Defaults to 0.
        pre_norm (bool): Build ``bn1`` (``style='standard'``).
        norm_cfg (dict): Norm config. Defaults to ``dict(type='BN')``.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 stride: int = 1,
                 drop_rate: float = 0.0,
                 pre_norm: bool = True,
                 norm_cfg: dict = dict(type='BN')) -> None:
        super().__init__()
        self.pre_norm = pre_norm
        self.drop_rate = drop_rate
        if pre_norm:
            self.bn1 = build_norm_layer(norm_cfg, in_channels)[1]
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(
            in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn2 = build_norm_layer(norm_cfg, out_channels)[1]
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(
            out_channels, out_channels, 3, 1, padding=1, bias=False)
        self.equal_in_out = in_channels == out_channels and stride == 1
        self.convShortcut = None if self.equal_in_out else nn.Conv2d(
            in_channels, out_channels, 1, stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        act = self.relu1(self.bn1(x) if self.pre_norm else x)
        out = self.relu2(self.bn2(self.conv1(act)))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        out = self.conv2(out)
        shortcut = x if self.equal_in_out else self.convShortcut(act)
        return shortcut + out


class WRNStage(nn.Module):
    """``num_blocks`` blocks in ``self.layer`` (the authors' NetworkBlock)."""

    def __init__(self, num_blocks: int, in_channels: int, out_channels: int,
                 stride: int, **kwargs) -> None:
        super().__init__()
        self.layer = nn.Sequential(*[
            WRNBasicBlock(in_channels if i == 0 else out_channels,
                          out_channels, stride if i == 0 else 1, **kwargs)
            for i in range(num_blocks)
        ])

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(x)


@MODELS.register_module()
class WideResNet(BaseBackbone):
    """CIFAR Wide ResNet WRN-``depth``-``widen_factor`` backbone.

    Pre-activation WRN as in the FRSKD (``classification/models/wrn.py``)
    and ReviewKD (``CIFAR-100/model/wide_resnet_cifar.py``) code:
    ``conv1`` (3x3, 16 channels) then three stages ``block1..3`` of
    ``n = (depth - 4) / 6`` :class:`WRNBasicBlock` with ``16k, 32k, 64k``
    channels (``k = widen_factor``), strides 1, 2, 2, then BN + ReLU.
    The classifier (global average pooling + FC) belongs to the neck/head.

    ``style`` selects between the two papers' networks (different functions):

    * ``'standard'`` (Zagoruyko & Komodakis; ReviewKD / CRD): every block
      starts with ``bn1 -> relu1``; a final ``bn1 -> relu`` follows
      ``block3``.
    * ``'frskd'``: FRSKD's ``wrn.py``. Its blocks have **no** input BN (the
      block's ``bn1`` is commented out), and instead each stage output goes
      through its own BN (``block1bn``, ``block2bn``, ``block3bn``);
      ``block3bn`` takes the place of the final ``bn1`` (FRSKD also builds a
      final ``bn1`` but never uses it; it is not built here).

    Module paths whose output is exactly the tensor each paper distils (for
    forward-hook taps, relative to the backbone; 32x32 input, ``k = 2``):

    * ReviewKD student (``is_feat=True, preact=False``; ``style='standard'``):
      the raw stage outputs ``block1``, ``block2``, ``block3``
      ((32, 32, 32), (64, 16, 16), (128, 8, 8)); its pooled feature is
      ``avgpool(relu)``, i.e. the output of the classifier's
      ``GlobalAveragePooling`` neck.
    * ReviewKD teacher (``preact=True``; ``style='standard'``): the next BN
      without its ReLU, ``block2.layer.0.bn1``, ``block3.layer.0.bn1``,
      ``bn1`` (plus the pooled neck output).
    * FRSKD (``preact=False``, the default; ``style='frskd'``):
      ``relu(block{k}bn(stage_k))`` = the outputs of
      ``block2.layer.0.relu1``, ``block3.layer.0.relu1`` and ``relu``. With
      ``preact=True`` (its ``od`` variant): ``block1bn``, ``block2bn``,
      ``block3bn``. With ``style='standard'`` the same three ``relu1`` /
      ``relu`` paths give the analogous post-BN-ReLU features.

    The backbone outputs (``out_indices``) are what each stage passes on:
    stage ``i < 2`` gives the raw stage output (``'frskd'``: after
    ``block{i+1}bn``), stage 2 gives the final post-BN-ReLU map that the
    classifier pools.

    Initialisation (``init_cfg`` default) is the authors': conv weights
    ``normal(0, sqrt(2 / (k * k * out_channels)))`` (Kaiming normal,
    fan-out), BN weight 1 / bias 0. The authors also zero the FC bias (set
    the head's ``init_cfg`` accordingly; mmpretrain's ``LinearClsHead``
    defaults to ``Normal(std=0.01)``).

    Args:
        depth (int): ``6n + 4``. Defaults to 16.
        widen_factor (int): Width multiplier ``k``. Defaults to 2.
        in_channels (int): Image channels. Defaults to 3.
        drop_rate (float): Dropout inside the blocks. Defaults to 0.
        style (str): ``'standard'`` or ``'frskd'``. Defaults to
            ``'standard'``.
        out_indices (Sequence[int]): Stages (0..2) to output. Defaults to
            ``(2, )``.
        norm_cfg (dict): Norm config. Defaults to ``dict(type='BN')``.
        init_cfg (dict | list[dict], optional): See above.
    """

    def __init__(self,
                 depth: int = 16,
                 widen_factor: int = 2,
                 in_channels: int = 3,
                 drop_rate: float = 0.0,
                 style: str = 'standard',
                 out_indices: Sequence[int] = (2, ),
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg: Optional[Union[dict, List[dict]]] = [
                     dict(
                         type='Kaiming',
                         layer='Conv2d',
                         mode='fan_out',
                         nonlinearity='relu',
                         distribution='normal'),
                     dict(
                         type='Constant',
                         val=1,
                         bias=0,
                         layer=['_BatchNorm', 'GroupNorm'])
                 ]) -> None:
        super().__init__(init_cfg=init_cfg)
        if depth < 10 or (depth - 4) % 6 != 0:
            raise ValueError(f'WRN depth must be 6n + 4 (n >= 1), got {depth}')
        if style not in ('standard', 'frskd'):
            raise ValueError(
                f"style must be 'standard' or 'frskd', got {style!r}")
        out_indices = [i + 3 if i < 0 else i for i in out_indices]
        if not out_indices or not all(0 <= i < 3 for i in out_indices):
            raise ValueError(f'out_indices must be in [0, 3), got '
                             f'{out_indices}')
        self.depth = depth
        self.widen_factor = widen_factor
        self.style = style
        self.out_indices = tuple(out_indices)
        num_blocks = (depth - 4) // 6
        channels = [16, 16 * widen_factor, 32 * widen_factor,
                    64 * widen_factor]
        self.stage_channels = tuple(channels[1:])
        frskd = style == 'frskd'

        self.conv1 = nn.Conv2d(
            in_channels, channels[0], 3, padding=1, bias=False)
        for i, stride in enumerate((1, 2, 2)):
            self.add_module(
                f'block{i + 1}',
                WRNStage(
                    num_blocks,
                    channels[i],
                    channels[i + 1],
                    stride,
                    drop_rate=drop_rate,
                    pre_norm=not frskd,
                    norm_cfg=norm_cfg))
            if frskd:
                self.add_module(f'block{i + 1}bn',
                                build_norm_layer(norm_cfg, channels[i + 1])[1])
        if not frskd:
            self.bn1 = build_norm_layer(norm_cfg, channels[3])[1]
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """(B, 3, H, W) -> tuple of the ``out_indices`` stage outputs
        ``(B, 16k * 2**i, H / 2**i, W / 2**i)``."""
        x = self.conv1(x)
        outs = []
        for i in range(3):
            x = getattr(self, f'block{i + 1}')(x)
            if self.style == 'frskd':
                x = getattr(self, f'block{i + 1}bn')(x)
            if i == 2:
                x = self.relu(x if self.style == 'frskd' else self.bn1(x))
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)
