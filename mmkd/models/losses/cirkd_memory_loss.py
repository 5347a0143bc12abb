"""CIRKD memory-based pixel-to-pixel and pixel-to-region distillation."""
from typing import Any, Dict, Optional, Tuple

import torch.nn.functional as F
from torch import Tensor, nn

from mmkd.registry import MODELS
from ..utils import relation_kl_sum


@MODELS.register_module()
class CIRKDMemoryLoss(nn.Module):
    """Memory-based pixel-to-pixel and pixel-to-region distillation of
    CIRKD (Yang et al., CVPR 2022, Sec. 3.3; docs/en/methods.md#cirkd), as
    the authors' ``StudentSegContrast.forward`` (winycg/CIRKD
    ``losses/cirkd_memory.py``).

    With ``s`` the projected student embedding and ``t`` the teacher's, both
    L2-normalised over channels, the labels resized to their ``h x w`` by
    nearest interpolation, the queues of the
    :class:`~mmkd.models.connectors.CIRKDMemory` ``memory`` first receive
    the batch's teacher embeddings (:meth:`CIRKDMemory.enqueue`), then, over
    the ``M`` pixels whose label is not ignored, with contrast sets
    ``X_p`` ``(K P, D)`` and ``X_r`` ``(K R, D)`` drawn from the queues::

        A^s = s X^T / tau,  A^t = t X^T / tau            (M, K P) or (M, K R)
        kl(A^s, A^t) = T^2 / M * sum_m KL(softmax(A^t_m / T) ||
                                          softmax(A^s_m / T))
        loss = pixel_weight * kl(pixel) + region_weight * kl(region)

    with ``tau = contrast_temperature`` (0.1) and ``T = kd_temperature``
    (1). The teacher side is detached; gradients reach the student and the
    projection head through ``s``. A batch whose pixels are all ignored
    gives 0 (the authors' code returns ``0 * mean`` of an empty tensor,
    NaN), after the enqueue (which then adds nothing).

    The authors' weights are 0.1 for both terms (``--lambda-memory-pixel``,
    ``--lambda-memory-region``); they log the two terms apart, mmkd logs
    their weighted sum (one enqueue per step).

    Args:
        pixel_weight (float): Weight of the pixel-to-pixel term.
        region_weight (float): Weight of the pixel-to-region term.
        contrast_temperature (float): ``tau`` of the similarities.
        kd_temperature (float): ``T`` of the KL.
        loss_weight (float): Multiplier of the sum. Defaults to 1.
    """

    def __init__(self,
                 pixel_weight: float = 0.1,
                 region_weight: float = 0.1,
                 contrast_temperature: float = 0.1,
                 kd_temperature: float = 1.0,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        for name, value in (('contrast_temperature', contrast_temperature),
                            ('kd_temperature', kd_temperature)):
            if value <= 0:
                raise ValueError(
                    f'CIRKDMemoryLoss: {name} must be positive, got {value}')
        self.pixel_weight = pixel_weight
        self.region_weight = region_weight
        self.contrast_temperature = contrast_temperature
        self.kd_temperature = kd_temperature
        self.loss_weight = loss_weight

    @staticmethod
    def check_wiring(name: str, inputs: Dict[str, Any],
                     connectors: Dict[str, dict]) -> None:
        """Check a distiller config's wiring of this loss (called by
        :class:`~mmkd.models.distillers.DistillGraph` at build): ``memory``
        is ``'<c>.memory'`` of a :class:`CIRKDMemory` connector ``c``,
        ``preds_S`` its projection ``'<c>.embed'``, ``preds_T`` the tap
        ``c`` takes as ``targets`` (the embeddings it enqueues), and ``gt``
        is mapped to the label maps.

        Args:
            name (str): The loss's name in the config.
            inputs (dict): Its ``inputs`` (forward argument -> source).
            connectors (dict): The config's connectors, name -> config.

        Raises:
            ValueError: Saying which argument to map to which source.
        """
        from mmkd.registry import MODELS
        from ..connectors.cirkd_memory import CIRKDMemory

        def is_memory(cfg: dict) -> bool:
            kind = cfg.get('type')
            cls = kind if isinstance(kind, type) else MODELS.get(kind)
            return isinstance(cls, type) and issubclass(cls, CIRKDMemory)

        memories = [n for n, cfg in connectors.items() if is_memory(cfg)]
        owner = f"loss '{name}' (CIRKDMemoryLoss)"
        example = memories[0] if memories else 'cirkd_memory'
        source = inputs.get('memory')
        root, _, key = (
            source.partition('.') if isinstance(source, str) else ('', '', ''))
        if root not in memories or key != 'memory':
            raise ValueError(
                f'{owner}: memory={source!r} is not the memory of a '
                'CIRKDMemory connector (the config\'s CIRKDMemory connectors:'
                f' {memories or "none"}). Declare a CIRKDMemory connector '
                'under `connectors` and map '
                f"memory='{example}.memory', preds_S='{example}.embed'.")
        if inputs.get('preds_S') != f'{root}.embed':
            raise ValueError(
                f"{owner}: preds_S={inputs.get('preds_S')!r}, but the student "
                'side of the memory loss is the projection of the connector '
                f"whose memory it uses: map preds_S='{root}.embed' (the "
                'projection head is trained through it).')
        targets = connectors[root].get('targets')
        if inputs.get('preds_T') != targets:
            raise ValueError(
                f"{owner}: preds_T={inputs.get('preds_T')!r}, but connector "
                f"'{root}' projects to the teacher embedding {targets!r} "
                '(its `targets`), which the loss enqueues and contrasts: '
                f'map preds_T={targets!r}.')
        if 'gt' not in inputs:
            raise ValueError(CIRKDMemoryLoss.NO_LABELS)

    #: The error for a memory loss no label map reaches.
    NO_LABELS = ('CIRKDMemoryLoss needs the label maps (its queues are per '
                 'class): map its `gt` argument to the batch\'s labels in the '
                 "config, e.g. inputs=dict(preds_S='cirkd_memory.embed', "
                 "preds_T='t_feat', memory='cirkd_memory.memory', "
                 "gt='gt_sem_seg')")

    def _check(self, preds_S, preds_T, memory, gt) -> None:
        if gt is None:
            raise ValueError(self.NO_LABELS)
        if not (hasattr(memory, 'enqueue') and hasattr(memory, 'dim')):
            raise ValueError(
                'CIRKDMemoryLoss: `memory` must be the memory of a '
                f'CIRKDMemory connector, got {type(memory).__name__}; map it '
                "to '<connector name>.memory'")
        if preds_S.dim() != 4 or preds_T.dim() != 4:
            raise ValueError(
                'CIRKDMemoryLoss expects (B, D, h, w) embeddings, got '
                f'{tuple(preds_S.shape)} and {tuple(preds_T.shape)}')
        if not (preds_S.shape[1] == preds_T.shape[1] == memory.dim):
            raise ValueError(
                f'CIRKDMemoryLoss: student embedding of {preds_S.shape[1]} '
                f'channels, teacher\'s of {preds_T.shape[1]}, memory of '
                f'{memory.dim}: they must agree. Feed preds_S from the '
                "connector's projection ('<connector>.embed') and preds_T "
                "from the tap the connector's `targets` name.")
        if preds_S.shape != preds_T.shape:
            raise ValueError(
                'CIRKDMemoryLoss: student and teacher embeddings differ in '
                f'shape: {tuple(preds_S.shape)} vs {tuple(preds_T.shape)}')
        if gt.dim() != 3 or gt.shape[0] != preds_S.shape[0]:
            raise ValueError(
                'CIRKDMemoryLoss: gt must be label maps (B, H, W) of the '
                f'same batch, got {tuple(gt.shape)}')

    @staticmethod
    def resize_labels(gt: Tensor, size: Tuple[int, int]) -> Tensor:
        """Labels ``(B, H, W)`` resized to ``size`` by nearest
        interpolation, as the authors (``F.interpolate(mode='nearest')``
        on the float labels)."""
        return F.interpolate(
            gt[:, None].float(), size=size, mode='nearest')[:, 0].long()

    def relation_kl(self, embed_S: Tensor, embed_T: Tensor, labels: Tensor,
                    contrast: Tuple[Tensor,
                                    Tensor], ignore_index: int) -> Tensor:
        """The weighted KL terms on given contrast sets.

        Args:
            embed_S, embed_T (Tensor): L2-normalised student / teacher
                embeddings ``(B, D, h, w)``.
            labels (Tensor): ``(B, h, w)``.
            contrast (tuple): ``(X_p, X_r)`` from
                :meth:`CIRKDMemory.contrast` / ``sample_contrast``.
            ignore_index (int): Label of ignored pixels.
        """
        D = embed_S.shape[1]
        valid = labels.reshape(-1) != ignore_index
        s = embed_S.permute(0, 2, 3, 1).reshape(-1, D)[valid]
        t = embed_T.detach().permute(0, 2, 3, 1).reshape(-1, D)[valid]
        # the authors' contrast_sim_kd: KL at T, batchmean, times T^2; the
        # 1 / (tau T) on the contrast set
        T = self.kd_temperature
        scale = 1. / (self.contrast_temperature * T)
        loss = embed_S.new_zeros(())
        for weight, X in zip((self.pixel_weight, self.region_weight),
                             contrast):
            X = X * scale
            kl = relation_kl_sum(s, X, t, X)
            loss = loss + weight * kl / s.shape[0] * T**2
        return loss

    def forward(self,
                preds_S: Tensor,
                preds_T: Tensor,
                memory: nn.Module,
                gt: Optional[Tensor] = None) -> Tensor:
        """Enqueue the teacher's embeddings, then compute the loss.

        Args:
            preds_S (Tensor): Projected student embedding ``(B, D, h, w)``
                (the connector's ``embed``).
            preds_T (Tensor): Teacher embedding ``(B, D, h, w)``.
            memory (CIRKDMemory): The connector's ``memory``.
            gt (Tensor): Label maps ``(B, H, W)`` (``'gt_sem_seg'``).

        Returns:
            Tensor: Scalar loss, times ``loss_weight``.
        """
        self._check(preds_S, preds_T, memory, gt)
        s = F.normalize(preds_S, p=2, dim=1)
        t = F.normalize(preds_T.detach(), p=2, dim=1)
        labels = self.resize_labels(gt, tuple(s.shape[-2:]))
        memory.enqueue(t, labels)
        if not (labels != memory.ignore_index).any():
            return preds_S.sum() * 0.
        loss = self.relation_kl(s, t, labels, memory.sample_contrast(),
                                memory.ignore_index)
        return self.loss_weight * loss
