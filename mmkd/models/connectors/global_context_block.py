"""The global context block of FGD's global distillation (a GcBlock)."""
import torch
import torch.nn.functional as F
from mmengine.model import constant_init, kaiming_init
from torch import Tensor, nn


class GlobalContextBlock(nn.Module):
    """GcBlock-style context block, as the relation module of FGD.

    FGD's global distillation (Yang et al., CVPR 2022), as the authors'
    ``FeatureLoss.spatial_pool`` and ``channel_add_conv_{s,t}``
    (yzd-v/FGD, ``mmdet/distillation/losses/fgd.py``); GCNet (Cao et al.,
    2019) with the channel-add fusion only::

        a = softmax_{HW}(W_k x)                    # (B, 1, H*W), W_k: 1x1 conv
        c = sum_{HW} a * x                         # (B, C, 1, 1), the context
        R(x) = x + W_v2 ReLU(LN(W_v1 c))           # (B, C, H, W)

    ``W_v1``: 1x1 conv ``C -> C // 2``; ``LN``: LayerNorm over
    ``(C // 2, 1, 1)``; ``W_v2``: 1x1 conv ``C // 2 -> C``. Initialised as
    the authors do: ``W_k`` Kaiming-normal (fan-in) with zero bias,
    ``W_v2`` zero (so ``R(x) = x`` at the start), ``W_v1`` PyTorch's
    default. Details: docs/en/methods.md#fgd.

    Args:
        channels (int): ``C``, the channels of the map (the teacher's
            channels in FGD, for the student and the teacher block).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        if channels < 2:
            raise ValueError(f'GlobalContextBlock needs >= 2 channels (its '
                             f'bottleneck has C // 2), got {channels}')
        self.channels = channels
        self.conv_mask = nn.Conv2d(channels, 1, kernel_size=1)
        self.channel_add_conv = nn.Sequential(
            nn.Conv2d(channels, channels // 2, kernel_size=1),
            nn.LayerNorm([channels // 2, 1, 1]), nn.ReLU(inplace=True),
            nn.Conv2d(channels // 2, channels, kernel_size=1))
        kaiming_init(self.conv_mask, mode='fan_in')
        constant_init(self.channel_add_conv[-1], val=0)

    def context(self, x: Tensor) -> Tensor:
        """The attention-pooled context ``(B, C, 1, 1)`` of ``x``."""
        B, C = x.shape[:2]
        weights = F.softmax(self.conv_mask(x).view(B, 1, -1), dim=2)
        # (B, C, HW) @ (B, HW, 1): one matrix product per image
        return torch.bmm(x.reshape(B, C, -1),
                         weights.transpose(1, 2)).view(B, C, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        """``x`` ``(B, C, H, W)`` plus its transformed context, broadcast
        over the positions."""
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f'GlobalContextBlock({self.channels}) needs '
                             f'(B, {self.channels}, H, W) maps, got '
                             f'{tuple(x.shape)}')
        return x + self.channel_add_conv(self.context(x))
