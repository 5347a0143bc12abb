"""Checks shared by the losses that compare student and teacher maps level
by level (CWD, PKD): lists of equal length, maps of equal shape, and the
precision the losses compute in."""
from typing import List, Sequence, Tuple, Union

import torch
from torch import Tensor

Feats = Union[Tensor, Sequence[Tensor]]


def paired_levels(loss: str, preds_S: Feats,
                  preds_T: Feats) -> List[Tuple[Tensor, Tensor]]:
    """``[(student, teacher), ...]`` per level, each pair ``(B, C, H, W)``
    of the same shape; a ``ValueError`` says what to change otherwise.

    Args:
        loss (str): Name of the loss, for the messages.
        preds_S (Tensor | Sequence[Tensor]): Student map(s).
        preds_T (Tensor | Sequence[Tensor]): Teacher map(s).
    """
    feats_s = _as_list(loss, preds_S, 'preds_S')
    feats_t = _as_list(loss, preds_T, 'preds_T')
    if len(feats_s) != len(feats_t):
        raise ValueError(
            f'{loss} got {len(feats_s)} student and {len(feats_t)} teacher '
            'levels: map preds_S and preds_T to lists of the same length, '
            "level by level (e.g. preds_S=['s0', 's1'], preds_T=['t0', "
            "'t1'])")
    for i, (s, t) in enumerate(zip(feats_s, feats_t)):
        where = f'{loss} level {i}'
        if s.dim() != 4 or t.dim() != 4:
            raise ValueError(f'{where}: needs (B, C, H, W) maps, got student '
                             f'{tuple(s.shape)} and teacher {tuple(t.shape)}')
        if s.shape[0] != t.shape[0]:
            raise ValueError(
                f'{where}: batch sizes differ (student {tuple(s.shape)}, '
                f'teacher {tuple(t.shape)})')
        if s.shape[2:] != t.shape[2:]:
            raise ValueError(
                f'{where}: the student map is {s.shape[2]}x{s.shape[3]} and '
                f'the teacher map {t.shape[2]}x{t.shape[3]} (student '
                f'{tuple(s.shape)}, teacher {tuple(t.shape)}). Tap levels '
                'of the same stride (the same FPN level, or both decode '
                "heads' conv_seg), or feed the student through a connector "
                "with the teacher tap as its targets (e.g. type='"
                "ConvConnector'), which resizes to the teacher's size")
        if s.shape[1] != t.shape[1]:
            raise ValueError(
                f'{where}: the student map has {s.shape[1]} channels and the '
                f'teacher map {t.shape[1]} (student {tuple(s.shape)}, '
                f'teacher {tuple(t.shape)}); channels are compared one to '
                'one. Add a connector that maps the student to the '
                "teacher's channels, e.g. connectors=dict(adapt=dict(type="
                "'ConvConnector', inputs=<student tap>, targets=<teacher "
                "tap>)), and map preds_S to 'adapt'")
    return list(zip(feats_s, feats_t))


def compute_dtype(x: Tensor) -> torch.dtype:
    """float64 for float64 inputs, float32 otherwise (bf16/fp16 inputs
    are promoted: softmax, KL and standardisation lose too much below
    float32)."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _as_list(loss: str, x: Feats, name: str) -> List[Tensor]:
    if isinstance(x, Tensor):
        return [x]
    if isinstance(x, (list, tuple)) and len(x) > 0 and all(
            isinstance(v, Tensor) for v in x):
        return list(x)
    raise ValueError(f'{loss}: {name} must be a tensor or a non-empty list of '
                     f'tensors, got {type(x).__name__}')
