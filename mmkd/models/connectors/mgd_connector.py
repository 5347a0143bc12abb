"""The MGD generation path: align, random mask, generation block."""
from typing import List, Optional, Sequence, Tuple, Union

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmkd.registry import MODELS

Channels = Union[int, Sequence[int]]
Sizes = Union[Tuple[int, int], Sequence[Tuple[int, int]]]


def mgd_keep_mask(x: Tensor, mask_ratio: float, mask_type: str) -> Tensor:
    """The 0/1 multiplier of MGD's random mask for ``x`` (N, C, H, W).

    Drawn from torch's global generator of ``x``'s device (seeded by
    MMEngine's ``randomness=dict(seed=...)``), one uniform number per image
    and position (``'spatial'``, shape (N, 1, H, W): a masked position is
    zero in every channel) or per image and channel (``'channel'``, shape
    (N, C, 1, 1)); each is masked with probability ``mask_ratio``. The
    thresholds are the authors': ``u > 1 - ratio`` masks a position
    (det/seg ``get_dis_loss``), ``u < ratio`` masks a channel (cls).

    Returns:
        Tensor: ``1`` where kept, ``0`` where masked, in ``x.dtype``.
    """
    n, c, h, w = x.shape
    if mask_type == 'spatial':
        u = torch.rand((n, 1, h, w), device=x.device)
        keep = u <= 1 - mask_ratio
    else:
        u = torch.rand((n, c, 1, 1), device=x.device)
        keep = u >= mask_ratio
    return keep.to(x.dtype)


class MGDLevel(nn.Module):
    """One level of MGD: ``align`` (a 1x1 conv with bias, only when the
    channels differ) and ``generation`` (conv3x3-ReLU-conv3x3 at the
    teacher's width, with biases), named as the authors' ``align`` and
    ``generation``; PyTorch's default initialisation, as theirs."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.align = (
            nn.Conv2d(in_channels, out_channels, kernel_size=1)
            if in_channels != out_channels else None)
        self.generation = nn.Sequential(
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1))

    def forward(self, x: Tensor, mask_ratio: float, mask_type: str) -> Tensor:
        if self.align is not None:
            x = self.align(x)
        return self.generation(x * mgd_keep_mask(x, mask_ratio, mask_type))


@MODELS.register_module()
class MGDConnector(BaseModule):
    """Masked Generative Distillation (Yang et al., ECCV 2022), Sec. 3.

    For each student feature ``S`` (N, C_s, H, W), as the authors'
    ``get_dis_loss`` (``yzd-v/MGD``, ``{cls,det,seg}/.../losses/mgd.py``)::

        S' = align(S)          # 1x1 conv to C_t channels, if C_s != C_t
        M  = random mask       # see mgd_keep_mask: 0 masked, 1 kept
        G  = W_l2(ReLU(W_l1(S' * M)))   # two 3x3 convs, (N, C_t, H, W)

    ``G`` is what :class:`MGDLoss` compares with the teacher's feature.
    Given a list of features (the FPN levels), each level has its own align
    and generation block and its own mask, as the authors' one loss module
    per level; the output is then a list. Equations and the differences from
    the paper: docs/en/methods.md#mgd.

    The mask is drawn at every call, in training and in eval mode (the
    authors' module has no mode switch; outside training it only runs in
    mmkd's build-time probe and in ``tools/visualize_taps.py``, which shows
    what the loss compares). mmkd draws it on the feature's device; the
    authors draw it on the CPU and copy it (same distribution, and the same
    numbers on a CPU).

    Args:
        in_channels (int | list[int]): Student channels per level (inferred
            by the distiller from ``inputs``).
        out_channels (int | list[int]): Teacher channels per level (inferred
            from ``targets``).
        mask_ratio (float): lambda, the probability that a position
            (``'spatial'``) or a channel (``'channel'``) is masked. The
            authors: 0.65 (one-stage detectors, SOLO), 0.45 (two-stage),
            0.75 (segmentation), 0.15 (classification).
        mask_type (str): ``'spatial'`` (N, 1, H, W) as the detection and
            segmentation code, or ``'channel'`` (N, C, 1, 1) as the
            classification code (the paper describes masking pixels only;
            mmkd follows the code).
    """

    def __init__(self,
                 in_channels: Channels,
                 out_channels: Channels,
                 mask_ratio: float = 0.65,
                 mask_type: str = 'spatial',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not 0 <= mask_ratio < 1:
            raise ValueError(
                f'MGDConnector: mask_ratio (lambda) must be in [0, 1), got '
                f'{mask_ratio}')
        if mask_type not in ('spatial', 'channel'):
            raise ValueError("MGDConnector: mask_type must be 'spatial' "
                             f"(detection, segmentation) or 'channel' "
                             f'(classification), got {mask_type!r}')
        self.is_list = not isinstance(in_channels, int)
        ins = [in_channels] if not self.is_list else list(in_channels)
        outs = ([out_channels]
                if isinstance(out_channels, int) else list(out_channels))
        if len(ins) != len(outs) or self.is_list != (not isinstance(
                out_channels, int)):
            raise ValueError(
                f'MGDConnector pairs student and teacher features level by '
                f'level, but got {in_channels} student and {out_channels} '
                'teacher channels: give `inputs` and `targets` the same '
                'number of taps (or one tap each).')
        self.mask_ratio = float(mask_ratio)
        self.mask_type = mask_type
        self.levels = nn.ModuleList(MGDLevel(i, o) for i, o in zip(ins, outs))

    def _check(self, feats: List[Tensor],
               out_sizes: Optional[List[Tuple[int, int]]]) -> None:
        if len(feats) != len(self.levels):
            raise ValueError(
                f'MGDConnector was built for {len(self.levels)} levels, got '
                f'{len(feats)} features')
        if out_sizes is not None and len(out_sizes) != len(feats):
            raise ValueError(
                f'MGDConnector got {len(feats)} student features but '
                f'{len(out_sizes)} teacher features: give `inputs` and '
                '`targets` the same number of levels.')
        for i, (x, level) in enumerate(zip(feats, self.levels)):
            if x.dim() != 4 or x.shape[1] != level.in_channels:
                raise ValueError(
                    f'MGDConnector level {i} expects (N, '
                    f'{level.in_channels}, H, W), got {tuple(x.shape)}')
            if out_sizes is not None and tuple(x.shape[-2:]) != tuple(
                    out_sizes[i]):
                raise ValueError(
                    f'MGDConnector level {i}: the student feature is '
                    f'{tuple(x.shape[-2:])} but the teacher feature is '
                    f'{tuple(out_sizes[i])} (H, W). MGD regenerates the '
                    "teacher's feature at the student's resolution (the "
                    'authors assert equal sizes): tap a student and a '
                    'teacher level of the same stride, or resize the '
                    'student feature with another connector (e.g. '
                    'ConvConnector with `targets`) and feed its output to '
                    'MGDConnector.')

    def forward(
            self,
            x: Union[Tensor, Sequence[Tensor]],
            out_sizes: Optional[Sizes] = None) -> Union[Tensor, List[Tensor]]:
        """
        Args:
            x (Tensor | list[Tensor]): Student feature(s), (N, C_s, H, W).
            out_sizes ((H, W) | list[(H, W)], optional): The teacher
                features' sizes (given by the distiller from ``targets``);
                each must equal its student feature's.

        Returns:
            Tensor | list[Tensor]: The generated feature(s), (N, C_t, H, W).
        """
        if torch.is_tensor(x) == self.is_list:
            raise ValueError(
                f'MGDConnector was built for '
                f'{"a list of" if self.is_list else "one"} feature(s), got '
                f'{"one tensor" if torch.is_tensor(x) else "a list"}')
        feats = list(x) if self.is_list else [x]
        if out_sizes is not None:
            out_sizes = list(out_sizes) if self.is_list else [out_sizes]
        self._check(feats, out_sizes)
        out = [
            level(f, self.mask_ratio, self.mask_type)
            for f, level in zip(feats, self.levels)
        ]
        return out if self.is_list else out[0]
