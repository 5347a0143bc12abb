"""Ground truth of a batch for losses that need it.

A distillation loss can map one of its arguments to a *ground-truth key*
instead of a tap, e.g. ``inputs=dict(logits='s_logits', gt='gt_label')``.
Each key names a function ``data_samples -> value`` in a small table; the
distiller calls it once per training step (only for the keys its losses
use) on the batch's data samples after the data preprocessor.

Built in:

* ``'gt_label'`` (mmpretrain ``DataSample``): class indices ``(B, )``, or
  soft targets ``(B, K)`` when a batch augmentation (Mixup/CutMix) set
  ``gt_score``;
* ``'gt_sem_seg'`` (mmseg ``SegDataSample``): label maps ``(B, H, W)``;
* ``'gt_instances'`` (mmdet ``DetDataSample``): the list of the images'
  ``InstanceData`` (``bboxes`` ``(N_i, 4)`` in the preprocessed image's
  pixels, ``labels`` ``(N_i, )``, ``masks`` for instance segmentation), one
  per image, since the images have different numbers of objects.

Any other field of the task's data samples is exposed by registering a
function, e.g. in a module listed in the config's ``custom_imports``::

    from mmkd.models.utils.ground_truth import register_ground_truth

    @register_ground_truth('gt_bboxes')
    def gt_bboxes(data_samples):
        return [s.gt_instances.bboxes for s in data_samples]

after which ``'gt_bboxes'`` is a valid source of any loss argument.
"""
from typing import Any, Callable, Dict, Optional, Sequence

import torch

GroundTruthFn = Callable[[Sequence], Any]

#: key -> function of the batch's data samples.
GROUND_TRUTH: Dict[str, GroundTruthFn] = {}

#: Names a loss can map an argument to (a live view of the table's keys).
GROUND_TRUTH_KEYS = GROUND_TRUTH.keys()


def register_ground_truth(key: str,
                          fn: Optional[GroundTruthFn] = None,
                          force: bool = False):
    """Register ``fn(data_samples) -> value`` under ``key``.

    Usable as a decorator (``@register_ground_truth('gt_x')``) or called
    directly (``register_ground_truth('gt_x', fn)``).

    Raises:
        KeyError: If ``key`` is registered already and ``force`` is False.
    """

    def register(func: GroundTruthFn) -> GroundTruthFn:
        if not isinstance(key, str) or not key:
            raise TypeError(f'ground truth key must be a non-empty str, got '
                            f'{key!r}')
        if key in GROUND_TRUTH and not force:
            raise KeyError(f'ground truth {key!r} is already registered '
                           '(pass force=True to replace it)')
        GROUND_TRUTH[key] = func
        return func

    return register if fn is None else register(fn)


@register_ground_truth('gt_label')
def _gt_label(data_samples: Sequence) -> torch.Tensor:
    if 'gt_score' in data_samples[0]:
        return torch.stack([s.gt_score for s in data_samples])
    return torch.cat([s.gt_label for s in data_samples])


@register_ground_truth('gt_sem_seg')
def _gt_sem_seg(data_samples: Sequence) -> torch.Tensor:
    return torch.stack([s.gt_sem_seg.data[0] for s in data_samples])


@register_ground_truth('gt_instances')
def _gt_instances(data_samples: Sequence) -> list:
    return [s.gt_instances for s in data_samples]


def get_ground_truth(data_samples: Sequence, key: str) -> Any:
    """One kind of ground truth of the batch (see the module docstring).

    Args:
        data_samples: The batch's data samples (mmpretrain ``DataSample``,
            mmseg ``SegDataSample``, mmdet ``DetDataSample``...).
        key: A registered key, e.g. ``'gt_label'``.
    """
    if not data_samples:
        raise ValueError(f"'{key}' was requested, but the batch has no data "
                         'samples')
    if key not in GROUND_TRUTH:
        raise KeyError(f'unknown ground truth {key!r}; one of '
                       f'{tuple(GROUND_TRUTH)} (register more with '
                       'mmkd.models.utils.register_ground_truth)')
    try:
        return GROUND_TRUTH[key](data_samples)
    except (AttributeError, KeyError) as e:
        raise KeyError(
            f"ground truth {key!r}: the data samples "
            f'({type(data_samples[0]).__name__}) do not carry it ({e!r}). '
            'Check that the training pipeline loads and packs it (e.g. '
            'LoadAnnotations before the Pack* transform).') from e
