"""A 1x1 (or kxk) conv adapter from student to teacher features."""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule

from mmkd.registry import MODELS


@MODELS.register_module()
class ConvConnector(BaseModule):
    """Conv-BN adapter (the FitNets regressor), with an optional resize.

    Maps a student feature (B, C_s, H, W) to the teacher's channels
    (B, C_t, H, W); when the teacher's spatial size differs it resizes
    first (``mode``), as the regressors of CRD/mdistiller do with strided
    convs. ``in_channels``/``out_channels`` are inferred by the distiller.

    Args:
        in_channels (int): Student channels.
        out_channels (int): Teacher channels.
        kernel_size (int): 1 (default) or 3, ...
        norm_cfg (dict, optional): Norm after the conv. Default BN.
        act_cfg (dict, optional): Activation after the norm. Default None.
        mode (str): Interpolation mode to the target size.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int = 1,
                 norm_cfg: Optional[dict] = dict(type='BN'),
                 act_cfg: Optional[dict] = None,
                 mode: str = 'bilinear',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.conv = ConvModule(
            in_channels,
            out_channels,
            kernel_size,
            padding=kernel_size // 2,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg)
        self.mode = mode

    def forward(self,
                x: torch.Tensor,
                out_sizes: Optional[Sequence[int]] = None) -> torch.Tensor:
        if out_sizes is not None and tuple(x.shape[-2:]) != tuple(out_sizes):
            x = F.interpolate(x, size=tuple(out_sizes), mode=self.mode)
        return self.conv(x)
