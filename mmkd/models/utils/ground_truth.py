"""Ground truth of a batch, as tensors, for losses that need labels."""
from typing import Sequence

import torch

#: Names a loss can map an argument to, resolved from the data samples.
GROUND_TRUTH_KEYS = ('gt_label', 'gt_sem_seg')


def get_ground_truth(data_samples: Sequence, key: str) -> torch.Tensor:
    """Stack one kind of ground truth over the batch.

    Args:
        data_samples: The batch's data samples (mmpretrain ``DataSample``,
            mmseg ``SegDataSample``).
        key: ``'gt_label'``: class indices (B,), or soft targets (B, K) when
            a batch augmentation (Mixup/CutMix) set ``gt_score``;
            ``'gt_sem_seg'``: label maps (B, H, W).
    """
    if not data_samples:
        raise ValueError(f"'{key}' was requested, but the batch has no data "
                         'samples')
    if key == 'gt_label':
        if 'gt_score' in data_samples[0]:
            return torch.stack([s.gt_score for s in data_samples])
        return torch.cat([s.gt_label for s in data_samples])
    if key == 'gt_sem_seg':
        return torch.stack([s.gt_sem_seg.data[0] for s in data_samples])
    raise KeyError(f'unknown ground truth {key!r}; one of '
                   f'{GROUND_TRUTH_KEYS}')
