"""ReviewKD's review path: a chain of ABF modules from deep to shallow."""
from typing import List, Optional, Sequence, Tuple

import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor

from mmkd.registry import MODELS
from ..utils.memory_format import to_channels_last
from .abf import ABF


@MODELS.register_module()
class ReviewKDConnector(BaseModule):
    """Review path of ReviewKD (Chen et al., CVPR 2021, Sec. 3.2-3.3).

    Turns the student features of ``L`` levels (given shallow->deep) into
    ``L`` maps with the teacher's channels (and sizes), each mixing the
    information of its own level and of all deeper levels (paper Eq. 6:
    the loss compares ``F_t^i`` with ``U(F_s^i, ..., F_s^L)``, where ``U``
    is built recursively by ABF from the deepest level up).

    Processing order (official ``ReviewKD.forward``): the deepest level goes
    through an ABF *without* fusion; each shallower level ``i`` is fused with
    the residual of level ``i + 1`` (nearest-resized to level ``i``'s size),
    and hands its own residual to level ``i - 1``. Outputs are returned
    shallow->deep, matching the order of the inputs.

    Conventions, versus the official code:
        * The official CIFAR student returns ``[f0 (stem), f1, f2, f3,
          f4 (avg-pooled, N x C x 1 x 1)]`` but builds only 4 ABFs, so its
          ``zip`` silently drops ``f0`` (the ImageNet code uses the 4 stages
          plus the pooled feature). In mmkd the config chooses the taps, and
          this connector processes exactly the levels it is given: to
          reproduce the CIFAR runs, tap ``[stage1, stage2, stage3, pooled]``
          of the student (post-ReLU) and the teacher's pre-ReLU stage ends
          plus its pooled feature (teacher ``f0`` is also dropped).
        * A pooled (N, C, 1, 1) level is an ordinary level here (the deepest
          one, without fusion); its BN needs > 1 sample per device.
        * The official ``abfs`` list is stored deepest first; here
          ``abfs[i]`` belongs to input level ``i`` (shallow->deep), so the
          official ``abfs.k`` is ``abfs.{L-1-k}`` here.
        * Sizes: the official CIFAR code takes square ``shapes``/
          ``out_shapes``; here the residual is resized to each level's own
          (H, W) (as the Detection code), and ``out_sizes`` (the teachers'
          (H, W), e.g. for a ShuffleNet student of a ResNet teacher) are
          optional.

    Args:
        in_channels (list[int]): Student channels per level, shallow->deep.
        out_channels (list[int]): Teacher channels per level, shallow->deep.
        mid_channels (int, optional): Width of the fused maps. Defaults to
            ``min(512, in_channels[-1])`` (official CIFAR code); the official
            ImageNet MobileNet and Detection code use 256.
        norm_cfg (dict): Norm config of the ABFs. Defaults to BN.
        channels_last (bool): Run the review path in channels-last (NHWC)
            memory format: same math, faster convolutions on CPU (measured
            in docs/en/benchmark.md, "ReviewKD"); contiguous inputs get
            their gradients back contiguous. Defaults to True.
        init_cfg (dict, optional): MMEngine init config. Defaults to None
            (the authors' ABF init).
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 out_channels: Sequence[int],
                 mid_channels: Optional[int] = None,
                 norm_cfg: dict = dict(type='BN'),
                 channels_last: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.channels_last = channels_last
        if isinstance(in_channels, int) or isinstance(out_channels, int):
            raise ValueError('in_channels and out_channels must be lists '
                             '(one entry per level, shallow->deep)')
        in_channels, out_channels = list(in_channels), list(out_channels)
        if len(in_channels) == 0:
            raise ValueError('in_channels must name at least one level')
        if len(in_channels) != len(out_channels):
            raise ValueError(
                f'in_channels ({len(in_channels)} levels) and out_channels '
                f'({len(out_channels)} levels) must have the same length')
        for name, chs in (('in_channels', in_channels),
                          ('out_channels', out_channels)):
            if not all(isinstance(c, int) and c > 0 for c in chs):
                raise ValueError(f'{name} must be positive ints, got {chs}')
        if mid_channels is None:
            mid_channels = min(512, in_channels[-1])
        if not (isinstance(mid_channels, int) and mid_channels > 0):
            raise ValueError(
                f'mid_channels must be a positive int, got {mid_channels}')
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.mid_channels = mid_channels
        num_levels = len(in_channels)
        self.abfs = nn.ModuleList([
            ABF(in_channels[i],
                mid_channels,
                out_channels[i],
                fuse=i < num_levels - 1,
                norm_cfg=norm_cfg) for i in range(num_levels)
        ])

    def forward(
        self,
        x: Sequence[Tensor],
        out_sizes: Optional[Sequence[Tuple[int, int]]] = None
    ) -> List[Tensor]:
        """Run the review path.

        Args:
            x (list[Tensor]): Student features, shallow->deep, level ``i`` of
                shape (N, in_channels[i], h_i, w_i).
            out_sizes (list[tuple[int, int]], optional): Teacher (H, W) per
                level, shallow->deep. A level is resized (nearest) to it when
                its size differs.

        Returns:
            list[Tensor]: Level ``i`` of shape (N, out_channels[i], H_i, W_i)
            (``out_sizes[i]`` if given, else (h_i, w_i)), shallow->deep.
        """
        if isinstance(x, Tensor) or not isinstance(x, (list, tuple)):
            raise ValueError('ReviewKDConnector expects a list of tensors '
                             '(one per level, shallow->deep)')
        num_levels = len(self.abfs)
        if len(x) != num_levels:
            raise ValueError(f'expected {num_levels} feature levels, '
                             f'got {len(x)}')
        for i, (feat, c) in enumerate(zip(x, self.in_channels)):
            if feat.dim() != 4 or feat.shape[1] != c:
                raise ValueError(f'level {i}: expected (N, {c}, H, W), got '
                                 f'{tuple(feat.shape)}')
        if out_sizes is None:
            out_sizes = [None] * num_levels
        elif len(out_sizes) != num_levels:
            raise ValueError(f'expected {num_levels} out_sizes, got '
                             f'{len(out_sizes)}')

        if self.channels_last:
            x = [to_channels_last(f) for f in x]
        outs: List[Optional[Tensor]] = [None] * num_levels
        residual = None
        for i in range(num_levels - 1, -1, -1):
            outs[i], residual = self.abfs[i](x[i], residual, out_sizes[i])
        return outs
