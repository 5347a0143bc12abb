"""``BiFPNSeg``: the FRSKD self-teacher for semantic segmentation.

FRSKD's segmentation code (MingiJi/FRSKD ``segmentation/utils/BiFPN.py`` and
``efficientdet.py``, docs/en/methods.md#frskd-segmentation) builds the
self-teacher differently from the classification ``BiFPNc``, so it is a
connector of its own. It
reuses :class:`~mmkd.models.connectors.bifpn_blocks.PointwiseConvBlock` for
the optional lateral projections only: the segmentation nodes are 1x1
*depthwise* convs, the fusions are plain sums and the resizes are bilinear
(up) and nearest (down) interpolations, none of which the ``BiFPNc``
blocks provide.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from torch import Tensor

from mmkd.registry import MODELS
from .bifpn_blocks import (PointwiseConvBlock, check_in_channels,
                           check_pyramid)

Size = Tuple[int, int]


class DepthwiseNode(nn.Sequential):
    """``DWConv1x1(C, groups=C, bias=True) -> BN -> ReLU`` (a BiFPNSeg node).

    The 1x1 depthwise conv is a learnt per-channel scale and shift.

    Shape:
        (B, C, H, W) -> (B, C, H, W), post-activation.
    """

    def __init__(self, channels: int,
                 norm_cfg: dict = dict(type='BN')) -> None:
        super().__init__(
            nn.Conv2d(channels, channels, 1, groups=channels),
            build_norm_layer(norm_cfg, channels)[1], nn.ReLU())


class BiFPNSegLayer(nn.Module):
    """One ``BiFPNSeg`` layer of the FRSKD segmentation code.

    With inputs ``X_0..X_{n-1}`` (level 0 finest, all ``C`` channels),
    ``Up`` bilinear and ``Down`` nearest interpolation to the size of the
    level they are added to, and ``N`` a :class:`DepthwiseNode`::

        U_{n-1} = N(X_{n-1})
        U_i     = N(X_i + Up(U_{i+1}))                     i = n-2..0
        O_0     = U_0
        O_i     = N(X_i + U_i + Down(O_{i-1}))              i = 1..n-1

    and returns ``[O_i]``; with ``is_last`` the bottom-up path is not built
    and the layer returns ``[U_i]`` (the official ``is_last=True`` layer).
    Fusions are plain sums (no fast-normalised weights).

    Args:
        channels (int): Channels ``C`` of every level.
        num_levels (int): Number of levels ``n``.
        is_last (bool): Top-down path only.
        align_corners (bool): Of the bilinear upsampling. Defaults to False
            (the official ``nn.Upsample`` default).
        norm_cfg (dict): Norm config. Defaults to BN.
    """

    def __init__(
        self,
        channels: int,
        num_levels: int,
        is_last: bool = False,
        align_corners: bool = False,
        norm_cfg: dict = dict(type='BN')
    ) -> None:
        super().__init__()
        self.is_last = is_last
        self.align_corners = align_corners
        self.up_nodes = nn.ModuleList(
            [DepthwiseNode(channels, norm_cfg) for _ in range(num_levels)])
        self.down_nodes = None if is_last else nn.ModuleList(
            [DepthwiseNode(channels, norm_cfg) for _ in range(num_levels - 1)])

    def forward(self, inputs: Sequence[Tensor]) -> List[Tensor]:
        n = len(inputs)
        ups: List[Optional[Tensor]] = [None] * n
        ups[n - 1] = self.up_nodes[n - 1](inputs[n - 1])
        for i in range(n - 2, -1, -1):
            up = F.interpolate(
                ups[i + 1],
                size=inputs[i].shape[-2:],
                mode='bilinear',
                align_corners=self.align_corners)
            ups[i] = self.up_nodes[i](inputs[i] + up)
        if self.is_last:
            return ups
        outs = [ups[0]]
        for i in range(1, n):
            down = F.interpolate(outs[i - 1], size=ups[i].shape[-2:])
            outs.append(self.down_nodes[i - 1](inputs[i] + ups[i] + down))
        return outs


@MODELS.register_module()
class BiFPNSeg(BaseModule):
    """FRSKD self-teacher for segmentation (dense logits), as the authors'
    segmentation code (docs/en/methods.md#frskd-segmentation).

    The official network (``EfficientDet`` in ``segmentation/utils``) is
    EfficientNet-b0 + FPN -> 6 levels -> ``BiFPN1`` (3 ``BiFPNSeg`` layers,
    the *student* branch) -> ``classifier1``; the self-teacher ``BiFPN2``
    (``BiFPNSeg``, then ``BiFPNSeg(is_last=True)``) runs on ``BiFPN1``'s
    outputs and ends in ``classifier2`` on its finest level. Here the
    student is any mmseg model and this connector is ``BiFPN2`` +
    ``classifier2`` over the student's multi-scale decoder features (e.g.
    the outputs of an mmseg ``FPN`` neck, the analogue of ``BiFPN1``'s
    outputs), so the student network is unchanged. Paper Sec. 3.1/4.3: the
    same self-teacher/feature-refinement idea as ``BiFPNc``; the code's
    segmentation variant is followed, not the classification wiring:

    * ``num_layers`` :class:`BiFPNSegLayer` (official: 2, the last one
      top-down only), nodes ``DWConv1x1 -> BN -> ReLU``, plain-sum fusions,
      **bilinear** upsampling and nearest downsampling (``BiFPNc`` uses
      nearest up / max-pool down with 1x1 conv blocks and weighted fusion);
    * resizes go to the exact size of the other level (the official code
      passes a scale factor, which only works for exact halvings), so any
      input size works;
    * classifier: ``Conv3x3(C, head_channels) -> BN -> ReLU ->
      Conv3x3(head_channels, num_classes)`` on the finest output. The
      official BN there has ``momentum=0.997`` (a TensorFlow-style value,
      which in PyTorch keeps almost no running average); it only affects
      the running statistics, which the self-teacher never uses (it runs
      in training mode only), so the default BN is used;
    * the official logits are bilinearly upsampled to the image size. Here
      they are resized (bilinear) to ``out_sizes`` when the distiller gives
      it (``targets`` = the student's logits, so KD compares equal shapes),
      and the ground-truth CE (``GTCrossEntropyLoss``) resizes them to the
      label size, as mmseg's decode heads do.
    * The official inputs all have the same width (64 for b0). Levels whose
      width differs from ``num_channels`` get a lateral
      ``Conv1x1 -> BN -> ReLU`` (like EfficientDet's lateral layers); an
      mmseg ``FPN`` neck needs none.

    The student features are not detached, as in the official code: the
    self-teacher's CE also trains the student, while the KD and AT losses
    detach the self-teacher side. Initialisation: PyTorch defaults, as the
    authors (``init_cfg=None``).

    Args:
        in_channels (list[int]): Channels of the student levels, finest
            first (inferred by the distiller).
        num_classes (int): Segmentation classes.
        num_channels (int, optional): Width of the BiFPN levels. Defaults to
            None: ``in_channels[0]``.
        num_layers (int): BiFPNSeg layers, the last one top-down only.
            Defaults to 2 (official).
        head_channels (int): Hidden width of the classifier. Defaults to 256.
        align_corners (bool): For the bilinear resizes. Defaults to False.
        norm_cfg (dict): Norm config. Defaults to ``dict(type='BN')``.
        init_cfg (dict, optional): Defaults to None (PyTorch default init).

    Shape:
        forward(x, out_sizes=None): ``x`` is a list of ``n`` tensors
        ``(B, c_i, H_i, W_i)``, finest first (any sizes). Returns
        ``dict(feats=[(B, num_channels, H_i, W_i)] * n,
        logits=(B, num_classes, H, W))`` with ``(H, W) = out_sizes`` or
        ``(H_0, W_0)``.
    """

    def __init__(self,
                 in_channels: Union[int, Sequence[int]],
                 num_classes: int,
                 num_channels: Optional[int] = None,
                 num_layers: int = 2,
                 head_channels: int = 256,
                 align_corners: bool = False,
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        in_channels = check_in_channels(in_channels)
        if num_layers < 1:
            raise ValueError(f'num_layers must be >= 1, got {num_layers}')
        num_channels = in_channels[0] if num_channels is None \
            else int(num_channels)
        self.in_channels = in_channels
        self.num_channels = num_channels
        self.num_classes = num_classes
        self.align_corners = align_corners
        self.laterals = nn.ModuleList([
            nn.Identity() if c == num_channels else PointwiseConvBlock(
                c, num_channels, norm_cfg) for c in in_channels
        ])
        self.layers = nn.ModuleList([
            BiFPNSegLayer(
                num_channels,
                len(in_channels),
                is_last=(i == num_layers - 1),
                align_corners=align_corners,
                norm_cfg=norm_cfg) for i in range(num_layers)
        ])
        self.classifier = nn.Sequential(
            nn.Conv2d(num_channels, head_channels, 3, padding=1),
            build_norm_layer(norm_cfg, head_channels)[1], nn.ReLU(),
            nn.Conv2d(head_channels, num_classes, 3, padding=1))

    def forward(
        self,
        x: Union[Tensor, Sequence[Tensor]],
        out_sizes: Optional[Union[Size,
                                  List[Size]]] = None) -> Dict[str, object]:
        """Run the self-teacher on the student's multi-scale features.

        Args:
            x (Sequence[Tensor]): ``n`` maps, finest first.
            out_sizes (tuple | list[tuple], optional): ``(H, W)`` of the
                logits (a one-element list is accepted).

        Returns:
            dict: ``feats`` (``n`` maps) and ``logits``.
        """
        feats = check_pyramid(x, self.in_channels, type(self).__name__,
                              halving=False)
        feats = [lat(f) for lat, f in zip(self.laterals, feats)]
        for layer in self.layers:
            feats = layer(feats)
        logits = self.classifier(feats[0])
        if out_sizes is not None:
            if isinstance(out_sizes, list):
                if len(out_sizes) != 1:
                    raise ValueError('BiFPNSeg gives one logits map; got '
                                     f'{len(out_sizes)} target sizes')
                out_sizes = out_sizes[0]
            if tuple(logits.shape[-2:]) != tuple(out_sizes):
                logits = F.interpolate(
                    logits,
                    size=tuple(out_sizes),
                    mode='bilinear',
                    align_corners=self.align_corners)
        return dict(feats=feats, logits=logits)
