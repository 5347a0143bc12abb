"""Focal and global distillation (FGD, Yang et al., CVPR 2022), as the
authors' ``FeatureLoss`` (yzd-v/FGD)."""
from typing import Any, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmkd.registry import MODELS

Feats = Union[Tensor, Sequence[Tensor]]


def box_tensor(boxes: Any) -> Tensor:
    """``(N, 4)`` x1, y1, x2, y2 of a tensor or of mmdet's box types."""
    if not torch.is_tensor(boxes) and hasattr(boxes, 'tensor'):
        boxes = boxes.tensor  # mmdet.structures.bbox.HorizontalBoxes
    if not torch.is_tensor(boxes) or boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError('FGDLoss: the boxes of an image must be (N, 4) '
                         f'x1, y1, x2, y2, got {boxes!r:.80}')
    return boxes


def fgd_masks(boxes: Sequence[Tensor],
              img_shapes: Sequence[Tuple[float, float]],
              size: Tuple[int, int],
              dtype: torch.dtype = torch.float32,
              device: Optional[torch.device] = None) -> Tuple[Tensor, Tensor]:
    """The foreground and background masks of FGD at one feature size.

    FGD's focal distillation (the paper's binary mask ``M`` and scale mask
    ``S``), as the authors' ``FeatureLoss.forward``
    (docs/en/methods.md#fgd-masks): each image's boxes ``(x1, y1, x2, y2)``
    are divided by its ``img_shape`` and multiplied by the feature size
    ``(H, W)``; a box covers the rows
    ``floor(y1)..ceil(y2)`` and the columns ``floor(x1)..ceil(x2)``, both
    ends included and cut at the map's border, with the value
    ``1 / ((ceil(y2) + 1 - floor(y1)) * (ceil(x2) + 1 - floor(x1)))`` (the
    count before the cut); where boxes overlap the largest value wins. The
    background is the complement, divided by its number of positions (all
    zeros if the boxes cover the whole map).

    Args:
        boxes (list[Tensor]): Per image, ``(N_i, 4)`` in the pixels of the
            image whose ``(h, w)`` is in ``img_shapes``.
        img_shapes (list[tuple]): Per image, ``(h, w)`` the boxes are
            relative to.
        size (tuple): ``(H, W)`` of the feature map.
        dtype, device: Of the masks.

    Returns:
        tuple[Tensor, Tensor]: ``Mask_fg`` and ``Mask_bg``, ``(B, H, W)``.
    """
    H, W = size
    B = len(boxes)
    fg = torch.zeros(B, H, W, dtype=dtype, device=device)
    counts = [len(b) for b in boxes]
    if sum(counts):
        b = torch.cat([box_tensor(x).to(device) for x in boxes])
        image = torch.repeat_interleave(
            torch.arange(B, device=device),
            torch.tensor(counts, device=device))
        shapes = b.new_tensor(img_shapes)[image]  # (n, 2): h, w per box
        # the authors' arithmetic, in the boxes' dtype: x / w_img * W
        wmin = torch.floor(b[:, 0] / shapes[:, 1] * W).long()
        wmax = torch.ceil(b[:, 2] / shapes[:, 1] * W).long()
        hmin = torch.floor(b[:, 1] / shapes[:, 0] * H).long()
        hmax = torch.ceil(b[:, 3] / shapes[:, 0] * H).long()
        area = 1.0 / (hmax + 1 - hmin).to(dtype) / (wmax + 1 - wmin).to(dtype)
        # slices [hmin:hmax + 1] (a negative start counts from 0 here)
        rows = torch.arange(H, device=device)
        cols = torch.arange(W, device=device)
        in_rows = (rows >= hmin[:, None]) & (rows <= hmax[:, None])
        in_cols = (cols >= wmin[:, None]) & (cols <= wmax[:, None])
        inside = in_rows[:, :, None] & in_cols[:, None, :]  # (n, H, W)
        values = (inside.to(dtype) * area[:, None, None]).view(len(b), -1)
        fg.view(B, -1).scatter_reduce_(0, image[:, None].expand_as(values),
                                       values, 'amax')
    bg = (fg <= 0).to(dtype)
    count = bg.sum((1, 2), keepdim=True)
    bg = torch.where(count > 0, bg / count.clamp(min=1), bg)
    return fg, bg


@MODELS.register_module()
class FGDLoss(nn.Module):
    """Focal and global distillation, as the authors' ``FeatureLoss``
    (yzd-v/FGD ``mmdet/distillation/losses/fgd.py``); equations and the
    code-vs-paper notes in docs/en/methods.md#fgd.

    Per FPN level, with ``F_s`` the (aligned) student map and ``F_t`` the
    teacher map ``(B, C, H, W)``, the attention of a map ``F``::

        A_S(F) = H W softmax_{HW}( mean_C |F| / T )      # (B, H, W)
        A_C(F) = C   softmax_C ( mean_HW |F| / T )       # (B, C)

    the masks ``M_fg``, ``M_bg`` of :func:`fgd_masks` and ``W = A_S(F_t)
    A_C(F_t)`` (the teacher's attention)::

        L_fg   = sum( M_fg W (F_s - F_t)^2 ) / B
        L_bg   = sum( M_bg W (F_s - F_t)^2 ) / B
        L_at   = sum|A_C(F_s) - A_C(F_t)| / B + sum|A_S(F_s) - A_S(F_t)| / B
        L_rela = sum( (R_s(F_s) - R_t(F_t))^2 ) / B
        L = alpha L_fg + beta L_bg + gamma L_at + lambda L_rela

    summed over the levels, times ``loss_weight``. ``R_s``, ``R_t`` are the
    trainable context blocks of two :class:`~mmkd.models.connectors.
    FGDConnector` s, which also hold the student's 1x1 align conv; their
    outputs come in as ``rela_S``, ``rela_T``. The teacher's map is
    detached here; the loss computes in float32 (float64 inputs stay
    float64) with autocast off.

    Args:
        temp (float): ``T``. Defaults to 0.5.
        alpha_fgd (float): Weight of ``L_fg``. Defaults to 0.001.
        beta_fgd (float): Weight of ``L_bg``. Defaults to 0.0005.
        gamma_fgd (float): Weight of ``L_at``. Defaults to 0.001.
        lambda_fgd (float): Weight of ``L_rela``. Defaults to 0.000005.
            (The defaults are the authors' ``FeatureLoss`` defaults; their
            configs set their own, see configs/fgd/.)
        shape_key (str): The meta key whose ``(h, w)`` the boxes are
            divided by: ``'img_shape'`` (the authors', the resized image
            before padding) or ``'batch_input_shape'`` (the padded batch,
            the exact geometry of the feature map).
        loss_weight (float): Multiplier of the whole loss. Defaults to 1.
    """

    def __init__(self,
                 temp: float = 0.5,
                 alpha_fgd: float = 0.001,
                 beta_fgd: float = 0.0005,
                 gamma_fgd: float = 0.001,
                 lambda_fgd: float = 0.000005,
                 shape_key: str = 'img_shape',
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if temp <= 0:
            raise ValueError(f'FGDLoss: temp must be > 0, got {temp}')
        for name, value in (('alpha_fgd', alpha_fgd), ('beta_fgd', beta_fgd),
                            ('gamma_fgd', gamma_fgd), ('lambda_fgd',
                                                       lambda_fgd)):
            if value < 0:
                raise ValueError(f'FGDLoss: {name} must be >= 0, got {value}')
        self.temp = temp
        self.alpha_fgd = alpha_fgd
        self.beta_fgd = beta_fgd
        self.gamma_fgd = gamma_fgd
        self.lambda_fgd = lambda_fgd
        self.shape_key = shape_key
        self.loss_weight = loss_weight

    def attention(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """Spatial ``(B, H, W)`` and channel ``(B, C)`` attention of
        ``(B, C, H, W)`` (FGD's attention, scaled by ``H W`` and ``C``)."""
        B, C, H, W = x.shape
        value = x.abs()
        spatial = H * W * F.softmax(
            (value.mean(1) / self.temp).view(B, -1), dim=1)
        channel = C * F.softmax(value.mean((2, 3)) / self.temp, dim=1)
        return spatial.view(B, H, W), channel

    def level_loss(self, fs: Tensor, ft: Tensor, rs: Tensor, rt: Tensor,
                   fg: Tensor, bg: Tensor) -> Tensor:
        """The weighted FGD terms of one level (``ft`` detached)."""
        B = fs.shape[0]
        s_t, c_t = self.attention(ft)
        s_s, c_s = self.attention(fs)
        # sum over channels first: (B, H, W)
        err = ((fs - ft).pow(2) * c_t[:, :, None, None]).sum(1) * s_t
        fg_loss = (err * fg).sum() / B
        bg_loss = (err * bg).sum() / B
        mask_loss = ((c_s - c_t).abs().sum() + (s_s - s_t).abs().sum()) / B
        rela_loss = (rs - rt).pow(2).sum() / B
        return (self.alpha_fgd * fg_loss + self.beta_fgd * bg_loss +
                self.gamma_fgd * mask_loss + self.lambda_fgd * rela_loss)

    def forward(self,
                preds_S: Feats,
                preds_T: Feats,
                rela_S: Feats,
                rela_T: Feats,
                gt_instances: Optional[Sequence] = None,
                img_metas: Optional[Sequence[dict]] = None) -> Tensor:
        """Compute the loss.

        Args:
            preds_S (Tensor | list[Tensor]): Aligned student maps
                ``(B, C, H_l, W_l)``, one per level (an FGDConnector's
                ``feats``).
            preds_T (Tensor | list[Tensor]): Teacher maps, same shapes.
            rela_S, rela_T (Tensor | list[Tensor]): The student's and the
                teacher's context-block outputs (the connectors'
                ``relation``), same shapes.
            gt_instances (list): Per image, an ``InstanceData`` with
                ``bboxes`` ``(N_i, 4)`` (ground truth ``'gt_instances'``),
                or the ``(N_i, 4)`` boxes themselves.
            img_metas (list[dict]): Per image, its meta information with
                ``shape_key`` (ground truth ``'img_metas'``).

        Returns:
            Tensor: The loss summed over levels, times ``loss_weight``
            (float32, or float64 for float64 inputs).
        """
        levels = self._check(preds_S, preds_T, rela_S, rela_T)
        boxes, shapes = self._check_gt(gt_instances, img_metas,
                                       levels[0][0].shape[0])
        with torch.autocast(levels[0][0].device.type, enabled=False):
            loss = 0.
            for fs, ft, rs, rt in levels:
                fs, ft, rs, rt = (
                    _at_least_float32(x) for x in (fs, ft.detach(), rs, rt))
                fg, bg = fgd_masks(boxes, shapes, tuple(fs.shape[-2:]),
                                   fs.dtype, fs.device)
                loss = loss + self.level_loss(fs, ft, rs, rt, fg, bg)
        return self.loss_weight * loss

    # ------------------------------------------------------------ checks
    @staticmethod
    def _check(preds_S: Feats, preds_T: Feats, rela_S: Feats,
               rela_T: Feats) -> List[Tuple[Tensor, ...]]:
        named = dict(
            preds_S=preds_S, preds_T=preds_T, rela_S=rela_S, rela_T=rela_T)
        lists = {}
        for name, value in named.items():
            if torch.is_tensor(value):
                value = [value]
            if not isinstance(value, (list, tuple)) or not value or not all(
                    torch.is_tensor(v) for v in value):
                raise ValueError(
                    f'FGDLoss: {name} must be a tensor or a non-empty list '
                    f'of tensors (one per level), got {type(value).__name__}')
            lists[name] = list(value)
        lengths = {name: len(v) for name, v in lists.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f'FGDLoss: the inputs have different numbers of '
                             f'levels {lengths}; map them to the same FPN '
                             'levels of both models')
        levels = list(zip(*lists.values()))
        for i, (fs, ft, rs, rt) in enumerate(levels):
            if fs.dim() != 4 or ft.dim() != 4:
                raise ValueError(
                    f'FGDLoss: level {i} needs (B, C, H, W) maps, got '
                    f'preds_S {tuple(fs.shape)} and preds_T '
                    f'{tuple(ft.shape)}')
            if fs.shape[2:] != ft.shape[2:] or fs.shape[0] != ft.shape[0]:
                raise ValueError(
                    f'FGDLoss: level {i} of the student is '
                    f'{tuple(fs.shape)} and of the teacher {tuple(ft.shape)}'
                    '; FGD compares the maps position by position: tap '
                    'levels of the same stride in both models')
            if fs.shape[1] != ft.shape[1]:
                raise ValueError(
                    f'FGDLoss: level {i} of the student has {fs.shape[1]} '
                    f'channels and of the teacher {ft.shape[1]}: map preds_S '
                    "to the 'feats' of an FGDConnector with the teacher's "
                    "levels as targets (e.g. preds_S='fgd_s.feats'), whose "
                    "1x1 align conv maps the student's channels to the "
                    "teacher's")
            if rs.shape != fs.shape or rt.shape != fs.shape:
                raise ValueError(
                    f'FGDLoss: level {i}: rela_S {tuple(rs.shape)} and '
                    f'rela_T {tuple(rt.shape)} must have the maps\' shape '
                    f'{tuple(fs.shape)}: map them to the FGDConnectors\' '
                    "'relation' outputs")
        return levels

    def _check_gt(self, gt_instances: Optional[Sequence],
                  img_metas: Optional[Sequence[dict]], batch: int):
        if gt_instances is None or img_metas is None:
            raise ValueError(
                "FGDLoss needs the ground-truth boxes and the images' "
                "metas: map its arguments gt_instances='gt_instances' and "
                "img_metas='img_metas' in the config (the data samples of "
                'an mmdet detector carry both)')
        if len(gt_instances) != batch or len(img_metas) != batch:
            raise ValueError(
                f'FGDLoss: {len(gt_instances)} gt_instances and '
                f'{len(img_metas)} img_metas for a batch of {batch} images')
        boxes, shapes = [], []
        for i, (inst, meta) in enumerate(zip(gt_instances, img_metas)):
            if not torch.is_tensor(inst):
                if 'bboxes' not in inst:
                    raise ValueError(
                        f'FGDLoss: the gt_instances of image {i} have no '
                        f'bboxes (fields {list(inst.keys())}): load the boxes'
                        ' in the training pipeline (LoadAnnotations('
                        'with_bbox=True) before PackDetInputs)')
                inst = inst.bboxes
            boxes.append(box_tensor(inst))
            if self.shape_key not in meta:
                raise ValueError(
                    f"FGDLoss: the metas of image {i} have no "
                    f"'{self.shape_key}' (keys {sorted(meta)}); the boxes "
                    'are divided by it')
            shapes.append(tuple(float(v) for v in meta[self.shape_key][:2]))
        return boxes, shapes


def _at_least_float32(x: Tensor) -> Tensor:
    return x.float() if x.dtype in (torch.bfloat16, torch.float16) else x
