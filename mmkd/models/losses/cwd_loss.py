"""Channel-wise distillation (CWD) loss."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmkd.registry import MODELS
from .feature_levels import Feats, compute_dtype, paired_levels


@MODELS.register_module()
class CWDLoss(nn.Module):
    """Channel-wise distillation (Shu et al., ICCV 2021), as the
    authors' ``CriterionCWD(norm_type='channel', divergence='kl')``
    (irfanICMLL/TorchDistiller, ``SemSeg-distill``) and MMRazor's
    ``ChannelWiseDivergence``; equations in docs/en/methods.md#cwd.

    Each channel of a map ``(B, C, H, W)`` becomes a distribution over its
    ``H * W`` positions, ``phi(y) = softmax(y / T)``, and the student's
    channel is pulled towards the teacher's by a KL divergence::

        L = T^2 / (B * C) * sum_{b, c} KL(phi(y_t[b, c]) || phi(y_s[b, c]))

    i.e. summed over positions and channels, divided by ``C * B`` (the
    code's ``/ (n * c)``; the paper writes ``T^2 / C`` per image). A list of
    maps (e.g. FPN levels) gives the sum of the levels' losses. The teacher
    side is detached, and the loss computes in float32 (float64 for float64
    inputs) whatever the input precision or autocast.

    Student and teacher maps must have the same shape; a ``ValueError``
    names the level that differs and whether to tap another level or add a
    connector (MMRazor asserts the spatial sizes only). The authors' code
    takes ``log`` of the student's softmax; mmkd uses ``log_softmax``, the
    same value, finite where a probability underflows.

    Authors' settings: Cityscapes logits ``T = 4``, weight 3 (the README's
    ``exp_cwd.sh channel kl 3 4``); RetinaNet FPN levels ``T = 1``,
    weight 5 (``pppppM/mmdetection-distiller``).

    Args:
        tau (float): Temperature ``T``. Defaults to 1.0.
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
    """

    def __init__(self, tau: float = 1.0, loss_weight: float = 1.0) -> None:
        super().__init__()
        if tau <= 0:
            raise ValueError(f'CWDLoss: tau must be positive, got {tau}')
        self.tau = tau
        self.loss_weight = loss_weight

    def forward(self, preds_S: Feats, preds_T: Feats) -> Tensor:
        """Compute the loss.

        Args:
            preds_S (Tensor | Sequence[Tensor]): Student maps
                ``(B, C, H, W)``, one per level.
            preds_T (Tensor | Sequence[Tensor]): Teacher maps of the same
                shapes (detached here).

        Returns:
            Tensor: Sum over levels, times ``loss_weight``.
        """
        levels = paired_levels('CWDLoss', preds_S, preds_T)
        T = self.tau
        loss = 0.
        with torch.autocast(levels[0][0].device.type, enabled=False):
            for s, t in levels:
                B, C, H, W = s.shape
                dtype = compute_dtype(s)
                z_s = s.to(dtype).reshape(B * C, H * W) / T
                z_t = t.detach().to(dtype).reshape(B * C, H * W) / T
                kl = F.kl_div(
                    F.log_softmax(z_s, dim=1),
                    F.log_softmax(z_t, dim=1),
                    reduction='sum',
                    log_target=True)
                loss = loss + kl * T**2 / (B * C)
        return self.loss_weight * loss
