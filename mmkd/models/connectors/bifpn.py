"""``BiFPN``: the fixed-width FRSKD self-teacher of the paper's ablation."""
from typing import Dict, List, Optional, Sequence, Union

import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from mmkd.registry import MODELS
from .bifpn_blocks import (BiFPNLayer, DepthCfg, check_in_channels,
                           check_pyramid)


@MODELS.register_module()
class BiFPN(BaseModule):
    """Fixed-width FRSKD self-teacher (official
    ``classification/models/bifpn.py``, ``--bifpn BiFPN``).

    The same bidirectional fusion as :class:`BiFPNc` (see
    :class:`BiFPNLayer` for the exact wiring and ReLU placement), but every
    level has ``num_channels`` channels (256 in the official defaults), so
    the resizes are a bare nearest x2 upsampling / TF-SAME 3x3/2 max-pool
    with **no** 1x1 conv-BN-ReLU after them. The first layer projects the
    student features with ``lat_conv`` (``c_i -> num_channels``) and
    ``lat_conv2``; further layers (``num_repeats > 1``, which works for this
    class in the official code) take the previous layer's outputs directly
    and have only ``lat_conv2`` (``num_channels -> num_channels``). Inner
    layers return post-ReLU maps; ``preact`` applies to the last one only.
    Logits: ``fc(avgpool(relu(T_{n-1})))`` (the official attribute is
    ``linear``).

    Args:
        in_channels (list[int]): Channels ``c_i`` of the student features,
            shallow to deep (inferred by the distiller).
        num_classes (int): Classes of the self-teacher's classifier.
        num_channels (int): Width of every level. Defaults to 256.
        depth (int | Sequence[int]): ``(lat, up, down)`` separable units
            (lateral unused). Defaults to ``(2, 2, 2)``.
        num_repeats (int): Stacked BiFPN layers. Defaults to 1.
        eps (float): Fast-normalised-fusion epsilon. Defaults to 1e-6.
        preact (bool): Return the pre-ReLU outputs. Defaults to False.
        norm_cfg (dict): Norm config. Defaults to ``dict(type='BN')``.
        init_cfg (dict, optional): Defaults to None (PyTorch default init).

    Shape:
        forward(x): list of ``n`` tensors ``(B, c_i, H_i, W_i)``, each level
        half the size of the previous one. Returns
        ``dict(feats=[(B, num_channels, H_i, W_i)] * n,
        logits=(B, num_classes))``.
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 num_classes: int,
                 num_channels: int = 256,
                 depth: DepthCfg = (2, 2, 2),
                 num_repeats: int = 1,
                 eps: float = 1e-6,
                 preact: bool = False,
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        in_channels = check_in_channels(in_channels)
        if num_repeats < 1:
            raise ValueError(f'num_repeats must be >= 1, got {num_repeats}')
        self.in_channels = in_channels
        self.num_channels = num_channels
        self.num_classes = num_classes
        self.preact = preact
        out_channels = [num_channels] * len(in_channels)
        self.layers = nn.ModuleList([
            BiFPNLayer(
                in_channels if i == 0 else out_channels,
                out_channels,
                depth=depth,
                resize_convs=False,
                with_lateral=i == 0,
                eps=eps,
                norm_cfg=norm_cfg) for i in range(num_repeats)
        ])
        self.fc = nn.Linear(num_channels, num_classes)

    def forward(self,
                x: Union[Tensor, Sequence[Tensor]],
                preact: Optional[bool] = None) -> Dict[str, object]:
        """Run the self-teacher on the student's features.

        Args:
            x (Sequence[Tensor]): ``n`` student features, shallow to deep
                (a single tensor if ``n == 1``).
            preact (bool, optional): Overrides ``self.preact``.

        Returns:
            dict: ``feats`` (list of ``n`` tensors) and ``logits``
            ``(B, num_classes)``.
        """
        x = check_pyramid(x, self.in_channels, type(self).__name__)
        preact = self.preact if preact is None else preact
        feats = x
        for i, layer in enumerate(self.layers):
            feats = layer(
                feats, preact=preact and i == len(self.layers) - 1)
        last = F.relu(feats[-1]) if preact else feats[-1]  # post-ReLU
        pooled = F.adaptive_avg_pool2d(last, 1).flatten(1)
        return dict(feats=feats, logits=self.fc(pooled))
