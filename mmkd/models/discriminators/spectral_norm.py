"""Spectral normalisation with the power iteration of SKD's authors."""
import torch
import torch.nn as nn
from torch import Tensor
from torch.nn.utils import parametrize


def _l2normalize(x: Tensor, eps: float) -> Tensor:
    """``x / (||x||_2 + eps)``, the authors' ``l2normalize``."""
    return x / (x.norm() + eps)


class AuthorsSpectralNorm(nn.Module):
    """Parametrization ``W -> W / sigma`` of SKD's SAGAN critic, the authors'
    ``SpectralNorm`` (``networks/spectral.py`` of their code).

    ``W`` is viewed as a ``(out_channels, rest)`` matrix. One power
    iteration per training-mode evaluation of the weight, **v first, then
    u** (the authors' order; ``torch.nn.utils.parametrizations.spectral_norm``
    updates ``u`` first, then ``v``)::

        v <- l2n(W^T u),   u <- l2n(W v),   l2n(x) = x / (||x||_2 + eps)
        sigma = u^T W v    (u, v constants: the gradient flows through W)
        W_sn  = W / sigma

    ``u`` and ``v`` start as l2-normalised standard normal vectors (no
    warm-up iterations, as the authors). They are buffers (``_u``, ``_v``:
    in the state dict, so training resumes with them; the same names as
    torch's parametrization, so checkpoints written with it load). In eval
    mode the weight is ``W / (u^T W v)`` with the stored vectors, which are
    not updated (the authors update them in every forward; their critic
    only runs in training).

    Args:
        weight (Tensor): The weight to normalise (for the vectors' sizes).
        n_power_iterations (int): Power iterations per evaluation in
            training mode. Defaults to 1 (authors).
        eps (float): Offset of the norm. Defaults to 1e-12 (authors).
    """

    def __init__(self,
                 weight: Tensor,
                 n_power_iterations: int = 1,
                 eps: float = 1e-12) -> None:
        super().__init__()
        if weight.dim() < 2:
            raise ValueError('AuthorsSpectralNorm needs a weight with at '
                             f'least 2 dims, got shape {tuple(weight.shape)}')
        if n_power_iterations < 1:
            raise ValueError('AuthorsSpectralNorm: n_power_iterations must be '
                             f'>= 1, got {n_power_iterations}')
        self.n_power_iterations = n_power_iterations
        self.eps = eps
        height = weight.shape[0]
        width = weight.numel() // height
        with torch.no_grad():
            u = weight.new_empty(height).normal_(0, 1)
            v = weight.new_empty(width).normal_(0, 1)
        self.register_buffer('_u', _l2normalize(u, eps))
        self.register_buffer('_v', _l2normalize(v, eps))

    def forward(self, weight: Tensor) -> Tensor:
        mat = weight.flatten(1)
        if self.training:
            with torch.no_grad():
                u = self._u
                for _ in range(self.n_power_iterations):
                    v = _l2normalize(torch.mv(mat.t(), u), self.eps)
                    u = _l2normalize(torch.mv(mat, v), self.eps)
                self._u.copy_(u)
                self._v.copy_(v)
        # clones: the graph of this weight must not see later in-place
        # updates of the buffers
        u = self._u.clone(memory_format=torch.contiguous_format)
        v = self._v.clone(memory_format=torch.contiguous_format)
        sigma = torch.dot(u, torch.mv(mat, v))
        return weight / sigma


def spectral_norm(module: nn.Module,
                  name: str = 'weight',
                  n_power_iterations: int = 1,
                  eps: float = 1e-12) -> nn.Module:
    """Register :class:`AuthorsSpectralNorm` on ``module.<name>`` (a
    ``torch.nn.utils.parametrize`` parametrization: the raw weight is
    ``module.parametrizations.<name>.original``).

    Returns:
        nn.Module: ``module`` itself.
    """
    weight = getattr(module, name)
    # unsafe=True: skip torch's check, which would evaluate the weight once
    # in training mode and so run a power iteration at construction
    parametrize.register_parametrization(
        module,
        name,
        AuthorsSpectralNorm(weight, n_power_iterations, eps),
        unsafe=True)
    return module
