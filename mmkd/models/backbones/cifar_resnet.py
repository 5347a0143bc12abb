"""CIFAR ResNets of the CRD/ReviewKD papers (resnet20/32/56/110, 8x4, 32x4)."""
from typing import Dict, Optional, Sequence, Tuple, Union

import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from mmkd.registry import MODELS


class CIFARBasicBlock(BaseModule):
    """Post-activation basic block whose pre-ReLU sum is hookable.

    ``out = relu2(preact(bn2(conv2(relu1(bn1(conv1(x))))) + shortcut(x)))``,
    with ``shortcut`` = 1x1 conv (stride) + BN when the shape changes
    (He et al. option B, as the CRD/ReviewKD code), else identity.

    ``preact`` is an ``nn.Identity``: its output (equivalently the input of
    the non-inplace ``relu2``) is the residual sum before the last ReLU,
    i.e. what the official code returns as ``preact``. All ReLUs are
    non-inplace so that hooked tensors are never overwritten afterwards.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        stride (int): Stride of the first conv and the shortcut.
        norm_cfg (dict): Norm config.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 stride: int = 1,
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.conv1 = nn.Conv2d(
            in_channels, out_channels, 3, stride=stride, padding=1,
            bias=False)
        self.bn1 = build_norm_layer(norm_cfg, out_channels)[1]
        self.relu1 = nn.ReLU(inplace=False)
        self.conv2 = nn.Conv2d(
            out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = build_norm_layer(norm_cfg, out_channels)[1]
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(
                    in_channels, out_channels, 1, stride=stride, bias=False),
                build_norm_layer(norm_cfg, out_channels)[1])
        else:
            self.downsample = None
        self.preact = nn.Identity()
        self.relu2 = nn.ReLU(inplace=False)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.preact(out + shortcut)
        return self.relu2(out)


@MODELS.register_module()
class CIFARResNet(BaseBackbone):
    """CIFAR ResNet of the CRD / ReviewKD papers (3 stages, BasicBlock).

    He et al. (CVPR 2016) Sec. 4.2 CIFAR nets as implemented in the CRD and
    ReviewKD code (``CIFAR-100/model/resnet_cifar.py``): a 3x3 stem conv-BN-
    ReLU (stride 1), then 3 stages of ``n = (depth - 2) / 6`` basic blocks
    with strides 1, 2, 2 and widths ``base, 2 base, 4 base``; the shortcut
    is a 1x1 conv + BN where the shape changes. The classifier (avg-pool +
    FC) is left to the neck and head (``GlobalAveragePooling``,
    ``LinearClsHead``).
    mmpretrain's ``ResNet_CIFAR`` is a different net (4 stages, 64-512).

    Archs (``arch``: depth, stem channels, base channels):
    resnet8/14/20/32/44/56/110: (6n+2, 16, 16) -> stages 16/32/64;
    resnet8x4: (8, 32, 64) and resnet32x4: (32, 32, 64) -> stages
    64/128/256 after a 32-channel stem. A dict
    ``dict(depth=..., stem_channels=..., base_channels=...)`` gives others.

    Module names follow the official code (``conv1``, ``bn1``, ``layer1``..
    ``layer3``, blocks ``conv1/bn1/conv2/bn2/downsample``), so CRD/ReviewKD
    checkpoints load after dropping their ``fc.*`` keys and prefixes.

    Tap paths (stage ``k`` in 1..3, last block index ``m = n - 1``):
        * post-ReLU stage output (the official ``f_k``, student side):
          output of ``layer{k}`` (= backbone output ``k - 1``).
        * pre-ReLU residual sum of the stage's last block (the official
          ``preact=True`` feature, teacher side): output of
          ``layer{k}.{m}.preact`` (= input of ``layer{k}.{m}.relu2``);
          ``relu`` of it is the stage output. ``m`` = 2 (resnet20),
          4 (resnet32, resnet32x4), 8 (resnet56), 17 (resnet110),
          0 (resnet8, resnet8x4).
        * stem output (the official ``f0``): output of ``relu``.

    Args:
        arch (str | dict): Arch name (see above) or a dict with keys
            ``depth``, ``stem_channels``, ``base_channels``.
            Defaults to 'resnet20'.
        in_channels (int): Input image channels. Defaults to 3.
        out_indices (Sequence[int]): Stages (0..2, negative allowed) whose
            outputs are returned. Defaults to (2, ).
        frozen_stages (int): Freeze the stem (0) and the first
            ``frozen_stages`` stages; -1 freezes nothing. Defaults to -1.
        norm_cfg (dict): Norm config. Defaults to ``dict(type='BN')``.
        norm_eval (bool): Keep norm layers in eval mode during training.
            Defaults to False.
        init_cfg (dict | list[dict]): Defaults to the official init
            (Kaiming normal, fan_out, for convs; BN weight 1, bias 0).
    """

    arch_settings: Dict[str, Tuple[int, int, int]] = {
        'resnet8': (8, 16, 16),
        'resnet14': (14, 16, 16),
        'resnet20': (20, 16, 16),
        'resnet32': (32, 16, 16),
        'resnet44': (44, 16, 16),
        'resnet56': (56, 16, 16),
        'resnet110': (110, 16, 16),
        'resnet8x4': (8, 32, 64),
        'resnet32x4': (32, 32, 64),
    }
    num_stages = 3

    def __init__(self,
                 arch: Union[str, dict] = 'resnet20',
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (2, ),
                 frozen_stages: int = -1,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 norm_eval: bool = False,
                 init_cfg: Optional[Union[dict, list]] = [
                     dict(
                         type='Kaiming',
                         layer='Conv2d',
                         mode='fan_out',
                         nonlinearity='relu'),
                     dict(
                         type='Constant',
                         val=1,
                         layer=['_BatchNorm', 'GroupNorm'])
                 ]) -> None:
        super().__init__(init_cfg=init_cfg)
        if isinstance(arch, str):
            if arch not in self.arch_settings:
                raise ValueError(f'unknown arch {arch!r}, choose from '
                                 f'{sorted(self.arch_settings)} or give a '
                                 'dict')
            depth, stem_channels, base_channels = self.arch_settings[arch]
        elif isinstance(arch, dict):
            missing = {'depth', 'stem_channels', 'base_channels'} - set(arch)
            if missing:
                raise ValueError(f'arch dict misses keys {sorted(missing)}')
            depth = arch['depth']
            stem_channels = arch['stem_channels']
            base_channels = arch['base_channels']
        else:
            raise ValueError(f'arch must be a str or dict, got {type(arch)}')
        if depth < 8 or (depth - 2) % 6 != 0:
            raise ValueError(f'depth must be 6n+2 (n >= 1), got {depth}')
        self.depth = depth
        self.stem_channels = stem_channels
        self.base_channels = base_channels
        self.num_blocks = (depth - 2) // 6
        out_indices = [
            i + self.num_stages if i < 0 else i for i in out_indices
        ]
        if not all(0 <= i < self.num_stages for i in out_indices):
            raise ValueError(f'out_indices must be in [-3, 2], got '
                             f'{out_indices}')
        self.out_indices = tuple(out_indices)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval

        self.conv1 = nn.Conv2d(
            in_channels, stem_channels, 3, stride=1, padding=1, bias=False)
        self.bn1 = build_norm_layer(norm_cfg, stem_channels)[1]
        self.relu = nn.ReLU(inplace=False)
        self.stage_channels = []
        channels = stem_channels
        for i in range(self.num_stages):
            width = base_channels * 2**i
            blocks = []
            for j in range(self.num_blocks):
                blocks.append(
                    CIFARBasicBlock(
                        channels,
                        width,
                        stride=(2 if i > 0 and j == 0 else 1),
                        norm_cfg=norm_cfg))
                channels = width
            self.add_module(f'layer{i + 1}', nn.Sequential(*blocks))
            self.stage_channels.append(width)
        self._freeze_stages()

    def _freeze_stages(self) -> None:
        if self.frozen_stages >= 0:
            for m in (self.conv1, self.bn1):
                m.eval()
                for p in m.parameters():
                    p.requires_grad = False
        for i in range(1, self.frozen_stages + 1):
            m = getattr(self, f'layer{i}')
            m.eval()
            for p in m.parameters():
                p.requires_grad = False

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """(N, in_channels, H, W) -> tuple of the selected stage outputs,
        stage ``i`` of shape (N, base * 2**i, H / 2**i, W / 2**i)."""
        x = self.relu(self.bn1(self.conv1(x)))
        outs = []
        for i in range(self.num_stages):
            x = getattr(self, f'layer{i + 1}')(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def train(self, mode: bool = True) -> 'CIFARResNet':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self
