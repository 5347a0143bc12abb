"""WGAN-GP terms of SKD's holistic distillation."""
from typing import Callable, Dict, Optional, Union

import torch
import torch.nn as nn
from torch import Tensor

from mmkd.registry import MODELS


def _critic_score(critic: Callable, x: Tensor,
                  image: Optional[Tensor]) -> Tensor:
    """``critic(x)`` or ``critic(x, image)`` when an image is given."""
    return critic(x) if image is None else critic(x, image)


def gradient_penalty(critic: Callable,
                     real: Tensor,
                     fake: Tensor,
                     image: Optional[Tensor] = None) -> Tensor:
    """WGAN-GP gradient penalty (Gulrajani et al., 2017, Eq. 3), as SKD's
    ``CriterionAdditionalGP`` (docs/en/methods.md#skd-holistic), without
    ``lambda_gp``::

        alpha ~ U(0, 1) per sample (broadcast over C, H, W)
        x_hat = alpha * real + (1 - alpha) * fake        # detached inputs
        g_b   = d sum(D(x_hat)) / d x_b                  # create_graph=True
        GP    = mean_b (||g_b||_2 - 1)^2                 # norm over C*H*W

    The interpolation is done on the given tensors (SKD: teacher/student
    logits). If ``critic`` has ``prepare_input``/``forward_critic`` (e.g.
    :class:`SKDDiscriminator`), ``x`` is ``critic.prepare_input(x_hat,
    image)``: the raw logits in ``'logits_bn'`` mode (master code, the BN is
    part of D) and ``cat(image, softmax(x_hat))`` in ``'image_softmax'`` mode
    (``cvpr_19`` code, the norm then also covers the image channels).
    Otherwise ``x = x_hat`` and ``D = critic(x_hat[, image])``. The graph is
    kept (``create_graph``) so the penalty trains the critic.

    Args:
        critic (Callable): The critic ``D``; returns scores of any shape
            ``(B, ...)``.
        real (Tensor): Real samples ``(B, ...)`` (teacher logits).
        fake (Tensor): Fake samples, same shape (student logits).
        image (Tensor, optional): Conditioning image passed to the critic.

    Returns:
        Tensor: Scalar penalty (not checked for finiteness: the caller may
        test ``torch.isfinite`` and skip the step).
    """
    if real.shape != fake.shape:
        raise ValueError('gradient_penalty: real and fake must have the same '
                         f'shape, got {tuple(real.shape)} and '
                         f'{tuple(fake.shape)}')
    real, fake = real.detach(), fake.detach()
    alpha = torch.rand((real.shape[0], ) + (1, ) * (real.dim() - 1),
                       device=real.device,
                       dtype=real.dtype)
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    if hasattr(critic, 'prepare_input') and hasattr(critic, 'forward_critic'):
        x_in = critic.prepare_input(x_hat, image)
        out = critic.forward_critic(x_in)
    else:
        x_in = x_hat
        out = _critic_score(critic, x_hat, image)
    grad, = torch.autograd.grad(outputs=out.sum(),
                                inputs=x_in,
                                create_graph=True)
    grad_norm = grad.flatten(1).norm(2, dim=1)
    return (grad_norm - 1).pow(2).mean()


@MODELS.register_module()
class HolisticCriticLoss(nn.Module):
    """Critic (discriminator) loss of SKD's holistic distillation, WGAN-GP
    (the paper's ``l_ho``, Sec. 3.1; the authors' ``CriterionAdv`` +
    ``CriterionAdditionalGP``, docs/en/methods.md#skd-holistic)::

        loss = w * [ -mean D(t) + mean D(s) ] + w * lambda_gp * GP(t, s)

    with ``w = loss_weight`` (the authors' ``lambda_d = 0.1``) and
    ``lambda_gp = 10``, so the effective GP weight is 1.0. Both logits are
    detached: this loss only trains the critic. ``mean`` runs over all
    elements of the critic map. The critic is called on the teacher, the
    student, then the interpolates, in this order (the authors' order, it
    matters for the BN running statistics in ``'logits_bn'`` mode, where BN
    is in train mode during the penalty as in the authors' code).

    Usage in an adversarial distiller (authors' ``optimize_parameters``: one
    critic step after every student step, ``n_critic = 1``, on the same
    logits, now detached)::

        loss_d = critic_loss(critic, logits_S, logits_T, image)
        if torch.isfinite(loss_d):   # else skip the step
            optim_wrapper['critic'].update_params(loss_d)

    Zero the critic's gradients before this step: the student's
    :class:`HolisticGeneratorLoss` backward also reaches the critic.

    Args:
        lambda_gp (float): Weight of the gradient penalty inside the
            bracket. Defaults to 10.0.
        loss_weight (float): ``lambda_d``. Defaults to 0.1.
    """

    def __init__(self,
                 lambda_gp: float = 10.0,
                 loss_weight: float = 0.1) -> None:
        super().__init__()
        self.lambda_gp = lambda_gp
        self.loss_weight = loss_weight

    def forward(self,
                critic: Callable,
                preds_S: Tensor,
                preds_T: Tensor,
                image: Optional[Tensor] = None,
                return_dict: bool = False) -> Union[Tensor, Dict[str, Tensor]]:
        """Compute the critic loss.

        Args:
            critic (Callable): The critic, ``critic(logits[, image])``.
            preds_S (Tensor): Student logits ``(B, C, H, W)``.
            preds_T (Tensor): Teacher logits ``(B, C, H, W)``.
            image (Tensor, optional): Conditioning image.
            return_dict (bool): Return ``dict(loss_critic_wd=...,
                loss_critic_gp=...)`` (weighted terms whose sum is the loss,
                for logging / ``parse_losses``) instead of their sum.

        Returns:
            Tensor | dict: Scalar loss (not checked for finiteness), or the
            two weighted terms.
        """
        if preds_S.shape != preds_T.shape:
            raise ValueError(
                'HolisticCriticLoss: preds_S and preds_T must have the same '
                f'shape, got {tuple(preds_S.shape)} and '
                f'{tuple(preds_T.shape)}')
        preds_S, preds_T = preds_S.detach(), preds_T.detach()
        score_t = _critic_score(critic, preds_T, image)
        score_s = _critic_score(critic, preds_S, image)
        loss_wd = self.loss_weight * (score_s.mean() - score_t.mean())
        loss_gp = self.loss_weight * self.lambda_gp * gradient_penalty(
            critic, preds_T, preds_S, image)
        if return_dict:
            return dict(loss_critic_wd=loss_wd, loss_critic_gp=loss_gp)
        return loss_wd + loss_gp


@MODELS.register_module()
class HolisticGeneratorLoss(nn.Module):
    """Student (generator) term of SKD's holistic distillation
    (``CriterionAdvForG``, docs/en/methods.md#skd-holistic)::

        loss = -loss_weight * mean D(s)

    with ``loss_weight = lambda_d = 0.1`` in the authors' run. The gradient
    reaches the student through the critic; the critic's parameters also
    receive gradients, which the distiller must not apply (step only the
    student's optimizer, and zero the critic's gradients before its own
    step, as the authors' ``D_solver.zero_grad()``).

    Args:
        loss_weight (float): ``lambda_d``. Defaults to 0.1.
    """

    def __init__(self, loss_weight: float = 0.1) -> None:
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self,
                critic: Callable,
                preds_S: Tensor,
                image: Optional[Tensor] = None) -> Tensor:
        """Compute the student's adversarial loss.

        Args:
            critic (Callable): The critic, ``critic(logits[, image])``.
            preds_S (Tensor): Student logits ``(B, C, H, W)`` (not detached).
            image (Tensor, optional): Conditioning image.

        Returns:
            Tensor: Scalar loss.
        """
        return -self.loss_weight * _critic_score(critic, preds_S, image).mean()
