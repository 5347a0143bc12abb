"""mmcv's box operators in float32 under autocast.

mmcv 2.1's C++ kernels of ``nms`` (CPU: float32 only) and ``RoIAlign`` (CPU:
float32/float64/float16) have no bfloat16 version, and autocast does not know
these operators: under ``torch.autocast('cpu', dtype=torch.bfloat16)`` a
two-stage detector's RPN post-processing raises ``expected scalar type Float
but found BFloat16`` in its first step. Inside :func:`float32_mmcv_ops` both
receive their tensors in float32, as autocast does for its own float32
operators: NMS selects the boxes on float32 copies (it returns indices, and
the kept boxes and scores keep the caller's dtype), and ``RoIAlign`` pools
a float32 copy of the features and returns the result in the features'
dtype (mmdet's RoI extractor writes it into a tensor of that dtype; the
casts are differentiable, so the gradient reaches the feature map).
Outside the context mmcv is unchanged.
"""
from contextlib import contextmanager
from typing import Iterator

import torch

_LOW = (torch.bfloat16, torch.float16)


def _to_float32(x):
    return x.float() if torch.is_tensor(x) and x.dtype in _LOW else x


@contextmanager
def float32_mmcv_ops() -> Iterator[None]:
    """Within this context, mmcv's ``nms`` (hence ``batched_nms``) and
    ``RoIAlign`` compute in float32 whatever the dtype of their inputs.
    A no-op where mmcv's ops are not installed."""
    try:
        from mmcv.ops.nms import NMSop
        from mmcv.ops.roi_align import RoIAlign
    except ImportError:  # mmcv without its compiled ops
        yield
        return
    nms_forward = NMSop.__dict__['forward']  # the staticmethod object
    roi_forward = RoIAlign.__dict__['forward']

    def nms(ctx, bboxes, scores, *args, **kwargs):
        return nms_forward.__func__(ctx, _to_float32(bboxes),
                                    _to_float32(scores), *args, **kwargs)

    def roi_align(self, input, rois):
        out = roi_forward(self, _to_float32(input), _to_float32(rois))
        return out.to(input.dtype)

    NMSop.forward = staticmethod(nms)
    RoIAlign.forward = roi_align
    try:
        yield
    finally:
        NMSop.forward = nms_forward
        RoIAlign.forward = roi_forward
