"""The SKD holistic-distillation critic (SAGAN-style discriminator)."""
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from torch import Tensor

from mmkd.registry import MODELS
from .self_attention import SAGANSelfAttention
from .spectral_norm import spectral_norm


@MODELS.register_module()
class SKDDiscriminator(BaseModule):
    """Critic of SKD's holistic (adversarial) distillation, the ``D`` of the
    paper's ``l_ho`` (Liu et al., CVPR 2019 / TPAMI, Sec. 3.1;
    docs/en/methods.md#skd-discriminator).

    It scores a whole segmentation map: WGAN-GP pushes the score of the
    teacher's map up and the student's one down. Architecture (authors'
    ``Discriminator``, ``conv_dim=64``)::

        input (see ``input_mode``)
        -> [SN(Conv 4x4 s2 p1) -> LeakyReLU(0.1)] x num_blocks
           (channels conv_dim * 2^i: 64, 128, 256, 512), with a
           SAGAN self-attention after blocks 3 and 4 (gamma init 0)
        -> Conv 4x4 s1 p0 -> 1 channel (no SN)
        64x64 input -> (B, 1, 1, 1); 128x128 -> (B, 1, 5, 5)

    ``input_mode``:

    * ``'logits_bn'`` (master code, the run behind the published numbers):
      raw logits ``(B, C, H, W)`` -> ``BatchNorm2d(C)`` -> conv blocks. No
      image.
    * ``'image_softmax'`` (``cvpr_19`` branch, the conditional critic the
      CVPR paper describes): ``cat([bilinear_resize(image, (H, W),
      align_corners=True), softmax(logits)], dim=1)``, i.e. ``3 + C``
      channels, no BatchNorm.

    :meth:`prepare_input` builds the tensor that the gradient penalty
    differentiates against (raw logits for ``'logits_bn'``, since the
    authors' GP goes through the BN; the concatenated input for
    ``'image_softmax'``, as the ``cvpr_19`` code); :meth:`forward_critic`
    scores it.

    Differences from the authors' code:

    * Number of blocks: the authors add the 4th strided conv when
      ``imsize_for_adv == 65`` (their default; without it their forward
      fails because it always calls the 4th block and the 512-channel
      attention), so ``num_blocks=4`` here, with the attention after the
      blocks listed in ``attention_after``.
    * Spectral norm: mmkd's :class:`AuthorsSpectralNorm`, the authors'
      power iteration (one per training-mode forward, ``v`` updated from
      ``u``, then ``u`` from ``v``, ``sigma = u^T W v``, norms offset by
      ``1e-12``, random initial vectors). Differences: ``u, v`` are buffers
      (the authors: non-trainable parameters ``weight_u``, ``weight_v``,
      raw weight ``weight_bar``) under torch's parametrization keys
      (``parametrizations.weight.original``, ``parametrizations.weight.0._u``
      and ``._v``, the keys of mmkd's earlier critic, whose checkpoints
      load unchanged); in eval mode they are not updated (the authors'
      update in every forward; the critic only runs in training).
    * The authors return ``[out, attn1, attn2]``; only ``out`` is used by
      their losses, so only the critic map is returned.
    * Initialisation: PyTorch defaults, as the authors.

    Args:
        in_channels (int): Number of classes ``C`` of the logits.
        conv_dim (int): Channels of the first conv. Defaults to 64.
        input_mode (str): ``'logits_bn'`` or ``'image_softmax'``.
            Defaults to ``'logits_bn'``.
        image_channels (int): Image channels for ``'image_softmax'``.
            Defaults to 3.
        num_blocks (int): Strided SN conv blocks. Defaults to 4.
        attention_after (Sequence[int]): 1-based indices of the blocks
            followed by self-attention. Defaults to (3, 4).
        negative_slope (float): LeakyReLU slope. Defaults to 0.1.
        norm_cfg (dict): Norm of the ``'logits_bn'`` preprocessing (e.g.
            ``dict(type='SyncBN')`` for multi-GPU). Defaults to BN.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    final_kernel = 4

    def __init__(self,
                 in_channels: int,
                 conv_dim: int = 64,
                 input_mode: str = 'logits_bn',
                 image_channels: int = 3,
                 num_blocks: int = 4,
                 attention_after: Sequence[int] = (3, 4),
                 negative_slope: float = 0.1,
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if input_mode not in ('logits_bn', 'image_softmax'):
            raise ValueError("SKDDiscriminator: input_mode must be "
                             "'logits_bn' or 'image_softmax', got "
                             f'{input_mode!r}')
        if num_blocks < 1:
            raise ValueError(
                f'SKDDiscriminator: num_blocks must be >= 1, got {num_blocks}')
        for idx in attention_after:
            if not 1 <= idx <= num_blocks:
                raise ValueError(
                    'SKDDiscriminator: attention_after indices must be in '
                    f'[1, num_blocks={num_blocks}], got '
                    f'{tuple(attention_after)}')
        self.in_channels = in_channels
        self.input_mode = input_mode
        self.image_channels = image_channels
        self.num_blocks = num_blocks

        if input_mode == 'logits_bn':
            self.preprocess = build_norm_layer(norm_cfg, in_channels)[1]
            cur = in_channels
        else:
            self.preprocess = None
            cur = image_channels + in_channels

        self.blocks = nn.ModuleList()
        self.attentions = nn.ModuleDict()
        for i in range(num_blocks):
            out = conv_dim * 2**i
            self.blocks.append(
                nn.Sequential(spectral_norm(nn.Conv2d(cur, out, 4, 2, 1)),
                              nn.LeakyReLU(negative_slope)))
            if i + 1 in attention_after:
                self.attentions[str(i + 1)] = SAGANSelfAttention(out)
            cur = out
        self.last = nn.Conv2d(cur, 1, self.final_kernel)

    def output_size(self, size: int) -> int:
        """Spatial size of the critic map for an input side ``size``
        (<= 0 if the input is too small)."""
        for _ in range(self.num_blocks):
            size = size // 2  # conv 4x4, stride 2, padding 1
        return size - self.final_kernel + 1

    def prepare_input(self,
                      logits: Tensor,
                      image: Optional[Tensor] = None) -> Tensor:
        """Build the critic input (the tensor the gradient penalty is taken
        against).

        Args:
            logits (Tensor): ``(B, C, H, W)`` segmentation logits.
            image (Tensor, optional): ``(B, 3, H_img, W_img)`` input image,
                required by ``'image_softmax'`` and ignored by
                ``'logits_bn'``.

        Returns:
            Tensor: ``logits`` itself (``'logits_bn'``) or ``(B, 3 + C, H,
            W)`` (``'image_softmax'``).
        """
        if logits.dim() != 4 or logits.shape[1] != self.in_channels:
            raise ValueError(
                f'SKDDiscriminator expects logits (B, {self.in_channels}, H, '
                f'W), got {tuple(logits.shape)}')
        if self.input_mode == 'logits_bn':
            return logits
        if image is None:
            raise ValueError("SKDDiscriminator: input_mode='image_softmax' "
                             'needs the image')
        if (image.dim() != 4 or image.shape[1] != self.image_channels
                or image.shape[0] != logits.shape[0]):
            raise ValueError(
                f'SKDDiscriminator expects an image (B={logits.shape[0]}, '
                f'{self.image_channels}, H, W), got {tuple(image.shape)}')
        image = F.interpolate(image.to(logits.dtype),
                              size=logits.shape[-2:],
                              mode='bilinear',
                              align_corners=True)
        return torch.cat([image, F.softmax(logits, dim=1)], dim=1)

    def forward_critic(self, x: Tensor) -> Tensor:
        """Score a prepared input (see :meth:`prepare_input`).

        Args:
            x (Tensor): ``(B, C_in, H, W)``.

        Returns:
            Tensor: Critic map ``(B, 1, h, w)``.
        """
        H, W = x.shape[-2:]
        if self.output_size(H) < 1 or self.output_size(W) < 1:
            need = self.final_kernel * 2**self.num_blocks
            raise ValueError(
                f'SKDDiscriminator: input {H}x{W} is too small for '
                f'num_blocks={self.num_blocks} stride-2 blocks and the final '
                f'{self.final_kernel}x{self.final_kernel} conv: need at least '
                f'{need} pixels per side. The critic sees the logits at the '
                'segmentor output resolution, i.e. crop size / output stride '
                '(512 / 8 = 64 in the authors\' run): use a larger crop size '
                '(train_dataloader RandomCrop crop_size), a model with a '
                'smaller output stride, or fewer critic blocks '
                '(critic=dict(num_blocks=..., attention_after=...))')
        if self.preprocess is not None:
            x = self.preprocess(x)
        for i, block in enumerate(self.blocks):
            x = block(x)
            key = str(i + 1)
            if key in self.attentions:
                x = self.attentions[key](x)
        return self.last(x)

    def forward(self,
                logits: Tensor,
                image: Optional[Tensor] = None) -> Tensor:
        """Score segmentation logits.

        Args:
            logits (Tensor): ``(B, C, H, W)`` logits (student or teacher).
            image (Tensor, optional): Input image for ``'image_softmax'``.

        Returns:
            Tensor: Critic map ``(B, 1, h, w)``.
        """
        return self.forward_critic(self.prepare_input(logits, image))
