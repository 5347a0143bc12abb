"""CIRKD's student projection head and the teacher's pixel/region memory."""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.dist import all_gather, broadcast, get_world_size
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmkd.registry import MODELS


def concat_all_gather(tensor: Tensor) -> Tensor:
    """``tensor`` of every process concatenated along dim 0 (rank order),
    without gradient; ``tensor`` itself in a single process (the authors'
    ``concat_all_gather``)."""
    if get_world_size() == 1:
        return tensor
    return torch.cat(all_gather(tensor.contiguous()), dim=0)


@MODELS.register_module()
class CIRKDMemory(BaseModule):
    """The student projection head and the teacher's embedding memory of
    CIRKD's memory-based distillation (Yang et al., CVPR 2022, Sec. 3.3;
    docs/en/methods.md#cirkd), as the authors' ``StudentSegContrast``
    (winycg/CIRKD ``losses/cirkd_memory.py``) without its loss, which is
    :class:`~mmkd.models.losses.CIRKDMemoryLoss`.

    **Projection** (trainable): ``conv1x1(C_s -> D, no bias) -> BN -> ReLU
    -> conv1x1(D -> D, no bias)`` of the student embedding ``(B, C_s, h, w)``
    to the teacher's ``D`` channels. ``forward`` returns
    ``dict(embed=<projection (B, D, h, w)>, memory=self)``: the loss maps
    ``preds_S='<name>.embed'`` and ``memory='<name>.memory'``.

    **Memory** (registered buffers, so in the distiller's checkpoints and
    restored by ``--resume``; ``tools/convert_to_student.py`` drops them):

    * ``pixel_queue`` ``(K, pixel_memory_size, D)`` and ``pixel_queue_ptr``
      ``(K,)``: per class, teacher pixel embeddings;
    * ``region_queue`` ``(K, region_memory_size, D)`` and
      ``region_queue_ptr`` ``(K,)``: per class, teacher region embeddings
      (the L2-normalised mean of a class's embeddings in one image).

    Both start as random unit vectors, as the authors'. :meth:`enqueue`
    takes the batch's L2-normalised teacher embeddings and labels at the
    embedding resolution; under DDP it first gathers those of every process
    (the authors' ``concat_all_gather``), so every process writes the same
    values and the queues stay identical (the processes' batches must have
    the same shape, as with mmseg's ``InfiniteSampler``). Then, for every
    image in rank order and every class ``c`` present in it (a pixel
    labelled ``ignore_index`` counts for no class):

    * region: the normalised mean embedding of ``c``'s pixels goes to slot
      ``region_queue_ptr[c]``, which advances by 1 modulo the size;
    * pixel: ``k = min(n_c, pixel_update_freq)`` embeddings, ``n_c`` the
      number of ``c``'s pixels, are chosen at random and written at
      ``[ptr, ptr + k)``, ``ptr = pixel_queue_ptr[c]``, then
      ``ptr += k``; if ``ptr + k >= pixel_memory_size`` they are written to
      the last ``k`` slots instead and ``ptr`` returns to 0 (the authors'
      wrap-around).

    Which pixels (``pixel_sampling``):

    * ``'authors'`` (default): as the released code, which draws
      ``randperm(n_c)[:k]`` and indexes the image's *flattened* embedding
      with it, i.e. ``k`` random positions among the first ``n_c`` pixels
      of the image in raster order, whatever their class.
    * ``'class'``: ``k`` random pixels of class ``c`` (class-wise pixel
      queues; docs/en/methods.md#cirkd-code-notes).

    The random choice draws one uniform key per pixel from torch's global
    generator (which MMEngine seeds; the exact-resume loops restore it) and
    takes the ``k`` candidates with the smallest keys; under DDP rank 0's
    keys are broadcast. :meth:`sample_contrast` draws the contrast sets
    with ``torch.randperm`` as the authors: the same ``pixel_contrast_size``
    (resp. ``region_contrast_size``) random slots of every class's queue.

    The enqueue is vectorised over classes and pixels, with a Python loop
    over the (gathered) images, since the pointer of a class moves from one
    image to the next; the authors loop over images and classes.

    Args:
        in_channels (int): Student embedding channels (inferred).
        out_channels (int): Teacher embedding channels ``D`` (inferred).
        num_classes (int): ``K``, the segmentation classes.
        pixel_memory_size (int): Pixel embeddings kept per class. Authors:
            20000.
        region_memory_size (int): Region embeddings kept per class. Authors:
            2000.
        pixel_contrast_size (int): Pixel embeddings drawn per class for the
            contrast set. The authors' script passes
            ``4096 // K + 1`` (216 for Cityscapes).
        region_contrast_size (int): Region embeddings drawn per class.
            Authors: ``1024 // K + 1`` (54 for Cityscapes).
        pixel_update_freq (int): Pixel embeddings enqueued per class and
            image at most. Authors: 16.
        ignore_index (int): Label of ignored pixels. Defaults to 255
            (mmseg).
        pixel_sampling (str): ``'authors'`` or ``'class'``, see above.
        norm_cfg (dict): Norm of the projection. The authors use SyncBN.
            Defaults to ``dict(type='BN')``.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 num_classes: int,
                 pixel_memory_size: int = 20000,
                 region_memory_size: int = 2000,
                 pixel_contrast_size: int = 216,
                 region_contrast_size: int = 54,
                 pixel_update_freq: int = 16,
                 ignore_index: int = 255,
                 pixel_sampling: str = 'authors',
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self._check_sizes(num_classes, pixel_memory_size, region_memory_size,
                          pixel_contrast_size, region_contrast_size,
                          pixel_update_freq)
        if pixel_sampling not in ('authors', 'class'):
            raise ValueError("CIRKDMemory: pixel_sampling must be 'authors' "
                             f"or 'class', got {pixel_sampling!r}")
        self.num_classes = num_classes
        self.dim = out_channels
        self.pixel_memory_size = pixel_memory_size
        self.region_memory_size = region_memory_size
        self.pixel_contrast_size = pixel_contrast_size
        self.region_contrast_size = region_contrast_size
        self.pixel_update_freq = pixel_update_freq
        self.ignore_index = ignore_index
        self.pixel_sampling = pixel_sampling
        self.project = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            build_norm_layer(norm_cfg, out_channels)[1], nn.ReLU(True),
            nn.Conv2d(out_channels, out_channels, 1, bias=False))
        self.register_buffer(
            'pixel_queue',
            F.normalize(
                torch.randn(num_classes, pixel_memory_size, out_channels),
                dim=2))
        self.register_buffer('pixel_queue_ptr',
                             torch.zeros(num_classes, dtype=torch.long))
        self.register_buffer(
            'region_queue',
            F.normalize(
                torch.randn(num_classes, region_memory_size, out_channels),
                dim=2))
        self.register_buffer('region_queue_ptr',
                             torch.zeros(num_classes, dtype=torch.long))
        # what the enqueue overwrites, while a step may still be skipped
        self._undo_log: Optional[list] = None

    @staticmethod
    def _check_sizes(num_classes, pixel_memory_size, region_memory_size,
                     pixel_contrast_size, region_contrast_size,
                     pixel_update_freq) -> None:
        if num_classes < 1:
            raise ValueError(
                f'CIRKDMemory: num_classes must be >= 1, got {num_classes}')
        for name, value in (('pixel_contrast_size', pixel_contrast_size),
                            ('region_contrast_size', region_contrast_size),
                            ('pixel_update_freq', pixel_update_freq)):
            if value < 1:
                raise ValueError(
                    f'CIRKDMemory: {name} must be >= 1, got {value}')
        for kind, memory, contrast in (('pixel', pixel_memory_size,
                                        pixel_contrast_size),
                                       ('region', region_memory_size,
                                        region_contrast_size)):
            if memory < contrast:
                raise ValueError(
                    f'CIRKDMemory: {kind}_memory_size={memory} is smaller '
                    f'than {kind}_contrast_size={contrast}: the contrast set '
                    f'draws {contrast} different slots of each class\'s '
                    f'queue. Raise {kind}_memory_size or lower '
                    f'{kind}_contrast_size (the authors: pixel 20000 / '
                    '4096 // K + 1, region 2000 / 1024 // K + 1).')
        if pixel_memory_size < pixel_update_freq:
            raise ValueError(
                f'CIRKDMemory: pixel_memory_size={pixel_memory_size} is '
                f'smaller than pixel_update_freq={pixel_update_freq}, the '
                'pixels one image can enqueue per class; raise it.')

    # ------------------------------------------------------------ forward
    def forward(
            self,
            x: Tensor,
            out_sizes: Optional[Sequence[int]] = None) -> Dict[str, object]:
        """Project the student embedding.

        Args:
            x (Tensor): Student embedding ``(B, C_s, h, w)``.
            out_sizes (tuple, optional): ``(h, w)`` of the teacher
                embedding (given by the distiller from ``targets``); the
                projection is 1x1, so it must equal the student's.

        Returns:
            dict: ``embed`` ``(B, D, h, w)`` (not normalised) and
            ``memory`` (this module).
        """
        if x.dim() != 4:
            raise ValueError('CIRKDMemory: the student embedding must be a '
                             f'(B, C, h, w) map, got {tuple(x.shape)}')
        if out_sizes is not None and tuple(out_sizes) != tuple(x.shape[-2:]):
            raise ValueError(
                f'CIRKDMemory: the student embedding is {tuple(x.shape[-2:])}'
                f' and the teacher\'s {tuple(out_sizes)}: a 1x1 projection '
                'cannot match them. Tap student and teacher features of the '
                'same resolution (e.g. the inputs of both decode heads\' '
                'conv_seg, both at output stride 8).')
        return dict(embed=self.project(x), memory=self)

    # ------------------------------------------------------------- memory
    def draw_keys(self, num_images: int, num_pixels: int,
                  device: torch.device) -> Tensor:
        """Uniform keys ``(num_images, num_pixels)`` for the random choice of
        the enqueued pixels, from torch's global generator; rank 0's under
        DDP."""
        keys = torch.rand(num_images, num_pixels).to(device)
        if get_world_size() > 1:
            broadcast(keys, src=0)
        return keys

    def undo_log_buffers(self) -> List[Tensor]:
        """The buffers :meth:`undo` restores: the queues and pointers. The
        non-finite guard's :class:`~mmkd.models.distillers.nonfinite_guard.
        BufferSnapshot` leaves them to it instead of copying the queues
        (816 MiB at the authors' Cityscapes sizes) every step."""
        return [
            self.pixel_queue, self.region_queue, self.pixel_queue_ptr,
            self.region_queue_ptr
        ]

    def start_undo_log(self) -> None:
        """From now on, record what :meth:`enqueue` overwrites (the slots'
        old values and the pointers), until :meth:`undo` or
        :meth:`stop_undo_log`."""
        self._undo_log = [(self.pixel_queue_ptr, slice(None),
                           self.pixel_queue_ptr.clone()),
                          (self.region_queue_ptr, slice(None),
                           self.region_queue_ptr.clone())]

    def stop_undo_log(self) -> None:
        """Keep the writes since :meth:`start_undo_log` and record no
        more."""
        self._undo_log = None

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state['_undo_log'] = None  # a step's log
        return state

    def undo(self) -> None:
        """Put back every value recorded since :meth:`start_undo_log`,
        newest first: the buffers are as they were then."""
        with torch.no_grad():
            for buffer, index, old in reversed(self._undo_log or []):
                buffer[index] = old
        self._undo_log = None

    def _write(self, buffer: Tensor, index: tuple, values: Tensor) -> None:
        if self._undo_log is not None:
            self._undo_log.append((buffer, index, buffer[index]))
        buffer[index] = values

    @torch.no_grad()
    def enqueue(self,
                embed_T: Tensor,
                labels: Tensor,
                keys: Optional[Tensor] = None) -> None:
        """Write a batch of teacher embeddings into the queues.

        Args:
            embed_T (Tensor): L2-normalised teacher embeddings
                ``(B, D, h, w)``.
            labels (Tensor): Labels ``(B, h, w)`` at the embedding
                resolution, in ``[0, K)`` or ``ignore_index``.
            keys (Tensor, optional): ``(B_all, h * w)`` random keys of the
                gathered batch (:meth:`draw_keys` when not given).
        """
        embed_T = concat_all_gather(embed_T.detach())
        labels = concat_all_gather(labels)
        B, D, h, w = embed_T.shape
        if D != self.dim:
            raise ValueError(
                f'CIRKDMemory: teacher embeddings of {D} channels, but the '
                f'queues hold {self.dim}-dimensional ones (out_channels)')
        N, K, device = h * w, self.num_classes, embed_T.device
        feats = embed_T.flatten(2).transpose(1, 2)  # (B, N, D)
        labels = labels.reshape(B, N).long()
        valid = labels != self.ignore_index
        bad = valid & ((labels < 0) | (labels >= K))
        if bad.any():
            raise ValueError(
                f'CIRKDMemory: labels {labels[bad].unique().tolist()} are '
                f'outside [0, {K}) and not ignore_index={self.ignore_index}; '
                'set num_classes / ignore_index to the dataset\'s.')
        if keys is None:
            keys = self.draw_keys(B, N, device)
        bucket = torch.where(valid, labels, K)  # ignored -> extra bucket K
        counts = torch.zeros(
            B, K + 1, dtype=torch.long, device=device).scatter_add_(
                1, bucket, torch.ones_like(bucket))[:, :K]  # (B, K)
        sums = feats.new_zeros(B, K + 1, D).scatter_add_(
            1, bucket[..., None].expand(B, N, D), feats)[:, :K]
        regions = F.normalize(
            sums / counts.clamp(min=1)[..., None].to(sums.dtype), dim=2)

        # the pixels to enqueue, for every (image, class) present
        pairs = (counts > 0).nonzero()  # (P, 2): image, class (ascending)
        if not len(pairs):
            return
        img, cls = pairs[:, 0], pairs[:, 1]
        n = counts[img, cls]
        pos = torch.arange(N, device=device)
        if self.pixel_sampling == 'authors':
            candidate = pos[None] < n[:, None]  # the first n_c positions
        else:
            candidate = bucket[img] == cls[:, None]
        F_ = min(self.pixel_update_freq, N)
        choice = torch.where(candidate, keys[img],
                             torch.full_like(keys[img], math.inf)).topk(
                                 F_, dim=1, largest=False).indices  # (P, F)
        chosen = F.normalize(
            feats[img[:, None], choice], dim=2)  # (P, F, D), authors too
        k = n.clamp(max=self.pixel_update_freq)
        slot = torch.arange(F_, device=device)

        start = 0
        for b in range(B):  # pointers move from one image to the next
            stop = start + int((img == b).sum())
            if stop == start:
                continue
            c, kb = cls[start:stop], k[start:stop]
            # regions: one per (image, class)
            ptr = self.region_queue_ptr[c]
            self._write(self.region_queue, (c, ptr), regions[b, c])
            self.region_queue_ptr[c] = (ptr + 1) % self.region_memory_size
            # pixels: k per (image, class), the authors' wrap-around
            ptr = self.pixel_queue_ptr[c]
            wrap = ptr + kb >= self.pixel_memory_size
            first = torch.where(wrap, self.pixel_memory_size - kb, ptr)
            keep = slot[None] < kb[:, None]  # (m, F)
            rows = c[:, None].expand(-1, F_)[keep]
            cols = (first[:, None] + slot[None])[keep]
            self._write(self.pixel_queue, (rows, cols),
                        chosen[start:stop][keep])
            self.pixel_queue_ptr[c] = torch.where(wrap, torch.zeros_like(ptr),
                                                  ptr + kb)
            start = stop

    def contrast(self, pixel_index: Tensor,
                 region_index: Tensor) -> Tuple[Tensor, Tensor]:
        """The contrast sets at given slots: ``(K * len(pixel_index), D)``
        pixel and ``(K * len(region_index), D)`` region embeddings, class by
        class (the authors' ``_sample_negative``)."""
        return (self.pixel_queue[:, pixel_index].reshape(-1, self.dim),
                self.region_queue[:, region_index].reshape(-1, self.dim))

    def sample_contrast(self) -> Tuple[Tensor, Tensor]:
        """Random contrast sets: the same random slots in every class's
        queue, ``randperm(size)[:contrast_size]`` (pixels first, then
        regions, from torch's global generator), as the authors."""
        device = self.pixel_queue.device
        pixel_index = torch.randperm(
            self.pixel_memory_size)[:self.pixel_contrast_size].to(device)
        region_index = torch.randperm(
            self.region_memory_size)[:self.region_contrast_size].to(device)
        return self.contrast(pixel_index, region_index)

    def extra_repr(self) -> str:
        return (f'num_classes={self.num_classes}, dim={self.dim}, '
                f'pixel_memory_size={self.pixel_memory_size}, '
                f'region_memory_size={self.region_memory_size}, '
                f'pixel_contrast_size={self.pixel_contrast_size}, '
                f'region_contrast_size={self.region_contrast_size}, '
                f'pixel_sampling={self.pixel_sampling!r}')
