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
  per image, since the images have different numbers of objects;
* ``'img_metas'`` (any data sample): the list of the images' meta
  information dicts (``metainfo``: for mmdet ``img_shape``, ``pad_shape``,
  ``batch_input_shape``, ``scale_factor``...), one per image.

A key may also register a *probe* function, ``probe(inputs, student) ->
value``: a stand-in value for a zero batch ``inputs`` ``(B, C, H, W)``, so
that a loss fed by the key can be run once before any data is seen, or a
``ValueError`` saying why the student's data samples cannot give this key
(e.g. boxes asked of a classifier). Every built-in key has one
(:func:`probe_ground_truth`).

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
from torch import nn

GroundTruthFn = Callable[[Sequence], Any]
ProbeFn = Callable[[torch.Tensor, nn.Module], Any]

#: key -> function of the batch's data samples.
GROUND_TRUTH: Dict[str, GroundTruthFn] = {}

#: Names a loss can map an argument to (a live view of the table's keys).
GROUND_TRUTH_KEYS = GROUND_TRUTH.keys()

#: key -> ``probe(inputs, student)``: the key's stand-in value for the
#: build-time probe (see the module docstring).
GROUND_TRUTH_PROBES: Dict[str, ProbeFn] = {}


def register_ground_truth(key: str,
                          fn: Optional[GroundTruthFn] = None,
                          force: bool = False,
                          probe: Optional[ProbeFn] = None):
    """Register ``fn(data_samples) -> value`` under ``key``.

    Usable as a decorator (``@register_ground_truth('gt_x')``) or called
    directly (``register_ground_truth('gt_x', fn)``). ``probe(inputs,
    student)``, if given, is the key's stand-in for the build-time probe
    (see :func:`probe_ground_truth`).

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
        if probe is not None:
            GROUND_TRUTH_PROBES[key] = probe
        else:
            GROUND_TRUTH_PROBES.pop(key, None)
        return func

    return register if fn is None else register(fn)


def _not_of_library(key: str, what: str, student: nn.Module, kind: str,
                    pipeline: str) -> ValueError:
    return ValueError(
        f"'{key}' ({what}) was requested, but the student is a "
        f'{type(student).__name__} ({type(student).__module__}), not {kind}:'
        f' its data samples carry no {key}. Distil {kind} whose training '
        f'pipeline loads it ({pipeline}), or map the loss argument to '
        'another source.')


def _is_classifier(model: nn.Module) -> bool:
    try:
        from mmpretrain.models.classifiers import BaseClassifier
    except ImportError:  # mmpretrain is not installed: no classifier
        return False
    return isinstance(model, BaseClassifier)


def _probe_gt_label(inputs: torch.Tensor, student: nn.Module) -> torch.Tensor:
    """Class indices ``(B, )``, all 0 (an mmpretrain classifier student);
    a ``ValueError`` for any other student."""
    if not _is_classifier(student):
        raise _not_of_library('gt_label', "the class of mmpretrain's "
                              'DataSample', student, 'an mmpretrain '
                              'classifier', 'PackInputs after loading the '
                              'labels')
    return torch.zeros(len(inputs), dtype=torch.long, device=inputs.device)


@register_ground_truth('gt_label', probe=_probe_gt_label)
def _gt_label(data_samples: Sequence) -> torch.Tensor:
    if 'gt_score' in data_samples[0]:
        return torch.stack([s.gt_score for s in data_samples])
    return torch.cat([s.gt_label for s in data_samples])


def _is_segmentor(model: nn.Module) -> bool:
    try:
        from mmseg.models.segmentors import BaseSegmentor
    except ImportError:  # mmseg is not installed: no segmentor
        return False
    return isinstance(model, BaseSegmentor)


def _probe_gt_sem_seg(inputs: torch.Tensor,
                      student: nn.Module) -> torch.Tensor:
    """Label maps ``(B, H, W)`` of the probe's size, every pixel of class
    0 (an mmseg segmentor student); a ``ValueError`` for any other
    student."""
    if not _is_segmentor(student):
        raise _not_of_library('gt_sem_seg', "the label maps of mmseg's "
                              'SegDataSample', student, 'an mmseg segmentor',
                              'LoadAnnotations before PackSegInputs')
    b, _, h, w = inputs.shape
    return torch.zeros(b, h, w, dtype=torch.long, device=inputs.device)


@register_ground_truth('gt_sem_seg', probe=_probe_gt_sem_seg)
def _gt_sem_seg(data_samples: Sequence) -> torch.Tensor:
    return torch.stack([s.gt_sem_seg.data[0] for s in data_samples])


def _is_detector(model: nn.Module) -> bool:
    try:
        from mmdet.models.detectors import BaseDetector
    except ImportError:  # mmdet is not installed: no detector
        return False
    return isinstance(model, BaseDetector)


def _probe_gt_instances(inputs: torch.Tensor, student: nn.Module) -> list:
    """One box per image, the middle half of the probe image (a detector
    student); a ``ValueError`` for any other student."""
    if not _is_detector(student):
        raise ValueError(
            "'gt_instances' (the boxes of mmdet's DetDataSample) was "
            f'requested, but the student is a {type(student).__name__} '
            f'({type(student).__module__}), not an mmdet detector: its data '
            'samples carry no boxes. Distil an mmdet detector whose training '
            'pipeline loads the boxes (LoadAnnotations(with_bbox=True) '
            'before PackDetInputs), or map the loss argument to another '
            'source.')
    from mmengine.structures import InstanceData
    h, w = inputs.shape[-2:]
    box = inputs.new_tensor([[w / 4, h / 4, 3 * w / 4, 3 * h / 4]])
    return [
        InstanceData(
            bboxes=box.clone(),
            labels=torch.zeros(1, dtype=torch.long, device=inputs.device))
        for _ in range(len(inputs))
    ]


@register_ground_truth('gt_instances', probe=_probe_gt_instances)
def _gt_instances(data_samples: Sequence) -> list:
    return [s.gt_instances for s in data_samples]


def _probe_img_metas(inputs: torch.Tensor, student: nn.Module) -> list:
    """The metas of unpadded, unscaled images of the probe's size."""
    shape = tuple(inputs.shape[-2:])
    return [
        dict(
            img_shape=shape,
            ori_shape=shape,
            pad_shape=shape,
            batch_input_shape=shape,
            scale_factor=(1., 1.)) for _ in range(len(inputs))
    ]


@register_ground_truth('img_metas', probe=_probe_img_metas)
def _img_metas(data_samples: Sequence) -> list:
    return [s.metainfo for s in data_samples]


def probe_ground_truth(key: str, inputs: torch.Tensor,
                       student: nn.Module) -> Optional[Any]:
    """The stand-in value of ``key`` for the build-time probe.

    Args:
        key: A registered key.
        inputs: The probe's zero batch ``(B, C, H, W)``.
        student: The distiller's student (what its data samples carry
            depends on its task library).

    Returns:
        The key's probe value, or ``None`` if the key registered no probe
        function (a loss fed by it cannot be checked at build time).

    Raises:
        ValueError: If the student's data samples cannot give ``key``
            (the message says what to change).
    """
    if key not in GROUND_TRUTH:
        raise KeyError(f'unknown ground truth {key!r}; one of '
                       f'{tuple(GROUND_TRUTH)}')
    probe = GROUND_TRUTH_PROBES.get(key)
    return None if probe is None else probe(inputs, student)


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
