"""Cross-entropy of any logits against the batch's ground truth."""
import torch
import torch.nn.functional as F
from torch import nn

from mmkd.registry import MODELS


@MODELS.register_module()
class GTCrossEntropyLoss(nn.Module):
    """Cross-entropy of extra logits (e.g. a self-teacher's) with the labels.

    Handles the three label forms of the task libraries:

    - class indices ``(B,)`` for logits ``(B, K)``;
    - soft targets ``(B, K)`` (mmpretrain's Mixup/CutMix ``gt_score``):
      ``-sum_k y_k log softmax(z)_k`` averaged over the batch, which equals
      ``lam * CE(y_a) + (1 - lam) * CE(y_b)`` of the FRSKD code;
    - label maps ``(B, H, W)`` for dense logits ``(B, K, h, w)``: the logits
      are bilinearly resized to the label size as mmseg's decode heads do,
      and pixels equal to ``ignore_index`` are skipped.

    Args:
        ignore_index (int): Label ignored in dense targets. Default 255.
        align_corners (bool): For the resize of dense logits.
        loss_weight (float): Weight of the loss.
    """

    def __init__(self,
                 ignore_index: int = 255,
                 align_corners: bool = False,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.align_corners = align_corners
        self.loss_weight = loss_weight

    def forward(self, logits: torch.Tensor,
                gt: torch.Tensor) -> torch.Tensor:
        """
        Args:
            logits: (B, K) or (B, K, h, w).
            gt: (B,) indices, (B, K) soft targets or (B, H, W) label maps.
        """
        if logits.dim() == 2 and gt.dim() == 2:
            if gt.shape != logits.shape:
                raise ValueError(f'soft targets {tuple(gt.shape)} do not '
                                 f'match logits {tuple(logits.shape)}')
            loss = -(gt * F.log_softmax(logits, dim=1)).sum(1).mean()
        elif logits.dim() == 2 and gt.dim() == 1:
            loss = F.cross_entropy(logits, gt.long())
        elif logits.dim() == 4 and gt.dim() == 3:
            if logits.shape[-2:] != gt.shape[-2:]:
                logits = F.interpolate(
                    logits,
                    size=gt.shape[-2:],
                    mode='bilinear',
                    align_corners=self.align_corners)
            loss = F.cross_entropy(
                logits, gt.long(), ignore_index=self.ignore_index)
        else:
            raise ValueError(
                f'GTCrossEntropyLoss: logits {tuple(logits.shape)} and '
                f'ground truth {tuple(gt.shape)} do not form a '
                'classification (B,K)+(B,)|(B,K) or segmentation '
                '(B,K,h,w)+(B,H,W) pair')
        return self.loss_weight * loss
