"""SAGAN self-attention block used by SKD's discriminator."""
from typing import Optional

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor

from mmkd.registry import MODELS


@MODELS.register_module()
class SAGANSelfAttention(BaseModule):
    """Self-attention of SAGAN (Zhang et al., 2019, Eq. 1-3), as the SKD
    discriminator's ``Self_Attn`` (docs/en/methods.md#skd-discriminator).

    With ``N = H * W`` positions and 1x1 convs (all with bias)
    ``q, k: C -> C // reduction`` and ``v: C -> C``::

        A[i, j] = softmax_j( q_i . k_j )             # (B, N, N)
        o_i     = sum_j A[i, j] v_j                  # (B, C, N)
        out     = gamma * o + x                      # gamma init 0

    Because ``gamma`` starts at 0 the block is the identity at
    initialisation. Weights keep PyTorch's default init (as the authors).

    Args:
        in_channels (int): Channels ``C`` of the input.
        reduction (int): Channel reduction of the query/key projections.
            Defaults to 8.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 in_channels: int,
                 reduction: int = 8,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if in_channels // reduction < 1:
            raise ValueError(
                'SAGANSelfAttention: in_channels // reduction must be >= 1, '
                f'got in_channels={in_channels}, reduction={reduction}')
        qk_channels = in_channels // reduction
        self.query_conv = nn.Conv2d(in_channels, qk_channels, 1)
        self.key_conv = nn.Conv2d(in_channels, qk_channels, 1)
        self.value_conv = nn.Conv2d(in_channels, in_channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor, return_attention: bool = False):
        """Apply the block.

        Args:
            x (Tensor): ``(B, C, H, W)``.
            return_attention (bool): Also return the ``(B, N, N)`` attention.

        Returns:
            Tensor | tuple[Tensor, Tensor]: ``(B, C, H, W)`` output (and the
            attention map if asked).
        """
        B, C, H, W = x.shape
        query = self.query_conv(x).flatten(2)  # (B, C', N)
        key = self.key_conv(x).flatten(2)  # (B, C', N)
        value = self.value_conv(x).flatten(2)  # (B, C, N)
        attention = torch.softmax(torch.bmm(query.transpose(1, 2), key),
                                  dim=-1)  # (B, N, N)
        context = torch.bmm(value, attention.transpose(1, 2))  # (B, C, N)
        out = self.gamma * context.view(B, C, H, W) + x
        if return_attention:
            return out, attention
        return out
