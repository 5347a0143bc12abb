"""``BiFPNc``: the FRSKD self-teacher (Ji et al., CVPR 2021).

Student backbones, and which of their module outputs are FRSKD's features
-----------------------------------------------------------------------------
FRSKD's student backbones put the ReLU at the *input* of each residual block
and return ``relu(stage_output)`` (docs/en/methods.md#frskd-student-features).
That is the same function as a standard post-activation ResNet, so no
FRSKD-specific ResNet is needed:

* **CIFAR ResNet-18** (``cifarresnet18``): mmpretrain 1.2.0's
  ``ResNet_CIFAR(depth=18)`` computes the same function: 3x3 stride-1 stem
  conv (no bias) -> BN -> ReLU, no max-pool, ``BasicBlock`` x [2, 2, 2, 2]
  with strides (1, 2, 2, 2), 1x1-conv+BN projection shortcuts where the
  shape changes. FRSKD's blocks apply ``relu`` to their input and return the
  pre-ReLU sum; mmpretrain's apply it to their output, i.e. the ReLU moves
  across a block boundary, and FRSKD's logits use ``avgpool(relu(out4))``,
  which is mmpretrain's ``layer4`` output pooled by ``GlobalAveragePooling``.
  The features FRSKD distils (``preact=False``, the default with
  ``--distill att``), ``[relu(out1), .., relu(out4)]`` with shapes (64, 32,
  32), (128, 16, 16), (256, 8, 8), (512, 4, 4), are exactly the outputs of
  the modules ``backbone.layer1`` .. ``backbone.layer4`` (also the
  backbone's outputs with ``out_indices=(0, 1, 2, 3)``).
  The pre-ReLU sums (FRSKD ``preact=True``, only used by its ``od`` variant)
  are not a module output: mmpretrain's ``BasicBlock`` sums in place and
  applies an *in-place* ReLU (``layerK.1.relu``, called twice per block).
  Differences are initialisation only: FRSKD keeps PyTorch defaults, while
  mmpretrain's ``ResNet`` defaults to Kaiming-normal convs and
  ``zero_init_residual=True``. A faithful config sets ``init_cfg=None`` and
  ``zero_init_residual=False`` on the backbone and ``init_cfg=None`` on the
  ``LinearClsHead`` (PyTorch-default ``nn.Linear``, bias included).
  So mmkd adds no CIFAR ResNet-18.
* **ImageNet-style ResNet-18/34/50** (224 px datasets): FRSKD's stem has no
  ReLU before the max-pool; the first block's input ReLU supplies it and
  ReLU commutes with max-pool, so mmpretrain's ``ResNet`` is the same
  function; taps ``backbone.layer1`` .. ``backbone.layer4`` as above.
* **WRN-16-2**: see :class:`mmkd.models.backbones.WideResNet`
  (``style='frskd'`` and its tap paths).
"""
from typing import Dict, List, Optional, Sequence, Union

import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from mmkd.registry import MODELS
from ..utils.memory_format import global_avg_pool, to_channels_last
from .bifpn_blocks import (BiFPNLayer, DepthCfg, check_in_channels,
                           check_pyramid)


@MODELS.register_module()
class BiFPNc(BaseModule):
    """FRSKD self-teacher ``BiFPNc`` (paper Sec. 3.1; official
    ``classification/models/bifpnc.py``), docs/en/methods.md#frskd-bifpnc.

    The student's features ``F_i`` (level 0 = highest resolution, ``c_i``
    channels) are projected to ``d_i = int(width * c_i)`` channels and fused
    by one bidirectional layer (:class:`BiFPNLayer`): a top-down path
    ``P_i = Conv(w1 * L_i + w2 * Resize(P_{i+1}))`` and a bottom-up path
    ``T_i = Conv(w1 * B_i + w2 * P_i + w3 * Resize(T_{i-1}))`` with fast
    normalised fusion weights (the paper's top-down and bottom-up fusion
    equations, Sec. 3.1). The logits are
    ``fc(avgpool(relu(T_{n-1})))``.

    Code vs. paper (the code is followed):

    * the bottom-up same-level input ``B_i`` comes from a second, separate
      lateral projection ``lat_conv2`` of the raw student feature, not from
      ``L_i``;
    * ``P_{n-1} = L_{n-1}`` and ``T_0 = P_0`` get no conv node (the paper's
      "diagonal" links);
    * resizes are nearest x2 upsampling / TF-SAME 3x3/2 max-pool, each
      followed by a 1x1 conv-BN-ReLU; fusion ``eps`` is 1e-6;
    * every fusion input is ReLU'd; the 3x3 depthwise-separable nodes end in
      BN, and the outputs are ``relu(T_i)`` unless ``preact``;
    * only ``repeat=1`` (one BiFPN layer, the paper setting) is supported:
      the official class crashes for ``repeat > 1`` with ``width != 1``.

    The student features are not detached here: as in the official code the
    self-teacher's CE also trains the student backbone.

    Args:
        in_channels (list[int]): Channels ``c_i`` of the student features,
            shallow to deep (inferred by the distiller).
        num_classes (int): Classes of the self-teacher's classifier.
        width (float): Width multiplier; ``d_i = int(width * c_i)``.
            Defaults to 2.
        depth (int | Sequence[int]): ``(lat, up, down)`` numbers of
            separable units; the lateral one is unused (as in the official
            code). Defaults to ``(2, 2, 2)``.
        eps (float): Fast-normalised-fusion epsilon. Defaults to 1e-6.
        preact (bool): Return the pre-ReLU ``T_i``. Defaults to False.
        channels_last (bool): Run the self-teacher in channels-last (NHWC)
            memory format. Same math; its depthwise convolutions run faster
            on CPU, and its 1x1 convolutions become matrix products
            (measured in docs/en/benchmark.md, "FRSKD"). Every gradient keeps
            the memory format of its map (contiguous student features get
            theirs back contiguous), as mixed formats make batch-norm and
            ReLU backward several times slower on CPU. Defaults to True.
        norm_cfg (dict): Norm config. Defaults to ``dict(type='BN')``.
        init_cfg (dict, optional): Defaults to None: PyTorch default init,
            as the authors.

    Shape:
        forward(x): ``x`` is a list of ``n`` tensors ``(B, c_i, H_i, W_i)``
        with ``H_i = 2 * H_{i+1}``, ``W_i = 2 * W_{i+1}``. Returns
        ``dict(feats=[(B, d_i, H_i, W_i)] * n, logits=(B, num_classes))``.
        ResNet-18 on 32x32 CIFAR: (128, 32, 32), (256, 16, 16), (512, 8, 8),
        (1024, 4, 4); WRN-16-2: (64, 32, 32), (128, 16, 16), (256, 8, 8).
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 num_classes: int,
                 width: float = 2,
                 depth: DepthCfg = (2, 2, 2),
                 eps: float = 1e-6,
                 preact: bool = False,
                 channels_last: bool = True,
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        in_channels = check_in_channels(in_channels)
        out_channels = [int(width * c) for c in in_channels]
        if min(out_channels) < 1:
            raise ValueError(f'width={width} gives empty levels '
                             f'{out_channels} for in_channels={in_channels}')
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.num_classes = num_classes
        self.width = width
        self.preact = preact
        self.channels_last = channels_last
        self.layer = BiFPNLayer(
            in_channels,
            out_channels,
            depth=depth,
            resize_convs=True,
            with_lateral=True,
            eps=eps,
            norm_cfg=norm_cfg)
        self.fc = nn.Linear(out_channels[-1], num_classes)

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
        if self.channels_last:
            x = [to_channels_last(t) for t in x]
        feats = self.layer(x, preact=preact)
        last = F.relu(feats[-1]) if preact else feats[-1]  # post-ReLU
        pooled = global_avg_pool(last)  # its gradient in last's format
        return dict(feats=feats, logits=self.fc(pooled))
