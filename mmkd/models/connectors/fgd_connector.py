"""FGD's trainable parts for one side (student or teacher): the 1x1 align
conv and the global context blocks, one per FPN level."""
from typing import Optional, Sequence, Union

from mmengine.model import BaseModule
from torch import Tensor, nn

from mmkd.registry import MODELS
from .global_context_block import GlobalContextBlock

Feats = Union[Tensor, Sequence[Tensor]]
Channels = Union[int, Sequence[int]]


@MODELS.register_module()
class FGDConnector(BaseModule):
    """Align conv + global context block of FGD, per level, for one side.

    FGD (Yang et al., CVPR 2022) keeps, per FPN level, a 1x1 conv that maps
    the student's channels to the teacher's when they differ (``align``)
    and two context blocks on the teacher's channels, one applied to the
    (aligned) student map and one to the teacher map (global distillation;
    the authors' ``FeatureLoss``). In mmkd these trainable parts are two
    connectors of this type, so that their channels are inferred and the
    loss stays a pure function:

    * the student side, ``inputs`` = the student's levels, ``targets`` = the
      teacher's levels: ``align`` (only where the channels differ, as the
      authors), then the student's context block; the build-time probe
      checks the number of levels and the spatial sizes against the
      teacher's;
    * the teacher side, ``inputs`` = the teacher's levels, no ``targets``:
      the teacher's context block on the detached teacher map (the block's
      own weights are trained, as the authors' ``channel_add_conv_t``).

    Both return ``dict(feats=[F_l], relation=[R(F_l)])`` with ``F_l`` the
    aligned student map (or the detached teacher map) of level ``l``
    ``(B, C_t, H_l, W_l)`` and ``R`` its :class:`GlobalContextBlock`; map
    :class:`~mmkd.models.losses.FGDLoss`'s ``preds_S`` to ``'<s>.feats'``
    and ``rela_S``/``rela_T`` to ``'<s>.relation'``/``'<t>.relation'``.
    A single tensor input (one level) gives single tensors.

    Args:
        in_channels (int | list[int]): Channels of the input levels
            (inferred from ``inputs``).
        out_channels (int | list[int], optional): The teacher's channels per
            level (inferred from ``targets``); ``None`` (no targets, the
            teacher side) means ``in_channels``.
        detach (bool, optional): Detach the input before the context block:
            the teacher side. Defaults to ``out_channels is None``.
        init_cfg (dict, optional): MMEngine init config. Defaults to None
            (the authors' initialisation, see :class:`GlobalContextBlock`;
            ``align`` has PyTorch's default, as theirs).
    """

    def __init__(self,
                 in_channels: Channels,
                 out_channels: Optional[Channels] = None,
                 detach: Optional[bool] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.single = isinstance(in_channels, int)
        ins = [in_channels] if self.single else list(in_channels)
        if out_channels is None:
            outs = ins
        else:
            outs = ([out_channels]
                    if isinstance(out_channels, int) else list(out_channels))
        if not ins or len(ins) != len(outs):
            raise ValueError(
                f'FGDConnector: the student gives {len(ins)} levels '
                f'(channels {ins}) and the teacher {len(outs)} (channels '
                f'{outs}); FGD pairs the levels one to one: tap the same '
                'FPN levels of both models')
        self.in_channels, self.out_channels = ins, outs
        self.detach = out_channels is None if detach is None else detach
        self.align = nn.ModuleList(
            nn.Conv2d(ci, co, kernel_size=1) if ci != co else nn.Identity()
            for ci, co in zip(ins, outs))
        self.context = nn.ModuleList(GlobalContextBlock(co) for co in outs)

    def forward(self, x: Feats, out_sizes: Optional[Sequence] = None) -> dict:
        """Align (student side) and add the global context, per level.

        Args:
            x (Tensor | list[Tensor]): ``(B, C_in, H_l, W_l)`` per level.
            out_sizes (list, optional): The teacher's ``(H_l, W_l)`` per
                level (given by the distiller when ``targets`` are set);
                they must equal the student's.

        Returns:
            dict: ``feats`` and ``relation``, lists (or tensors for a
            single level) of ``(B, C_t, H_l, W_l)``.
        """
        feats = [x] if isinstance(x, Tensor) else list(x)
        if len(feats) != len(self.context):
            raise ValueError(f'FGDConnector was built for {len(self.context)}'
                             f' levels, got {len(feats)}')
        if out_sizes is not None:
            sizes = [out_sizes] if self.single else list(out_sizes)
            for i, (f, size) in enumerate(zip(feats, sizes)):
                if tuple(f.shape[-2:]) != tuple(size):
                    raise ValueError(
                        f'FGDConnector: level {i} of the student is '
                        f'{tuple(f.shape[-2:])} and of the teacher '
                        f'{tuple(size)}; FGD compares the maps position by '
                        'position (its masks come from the same boxes): tap '
                        'levels of the same stride in both models')
        if self.detach:
            feats = [f.detach() for f in feats]
        feats = [align(f) for align, f in zip(self.align, feats)]
        relation = [block(f) for block, f in zip(self.context, feats)]
        if self.single:
            return dict(feats=feats[0], relation=relation[0])
        return dict(feats=feats, relation=relation)

    def extra_repr(self) -> str:
        return (f'in_channels={self.in_channels}, out_channels='
                f'{self.out_channels}, detach={self.detach}')
