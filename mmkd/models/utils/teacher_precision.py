"""Run a frozen teacher in its own precision and memory format."""
from typing import Callable, Optional

import torch
from torch import nn

#: ``precision`` names of a teacher and their dtypes.
PRECISIONS = {
    'fp32': torch.float32,
    'bf16': torch.bfloat16,
    'fp16': torch.float16,
}


def check_teacher_precision(precision: Optional[str],
                            cuda_available: Optional[bool] = None) -> None:
    """Raise for a precision that is unknown or unsupported here.

    float16 convolutions have no CPU kernels worth using (and some none at
    all), so without CUDA ``precision='fp16'`` is refused at build.
    """
    if precision is None:
        return
    if precision not in PRECISIONS:
        raise ValueError(
            f"teacher: precision={precision!r} is not one of "
            f"{sorted(PRECISIONS)} (or None: the training precision)")
    if cuda_available is None:
        cuda_available = torch.cuda.is_available()
    if precision == 'fp16' and not cuda_available:
        raise ValueError(
            "teacher: precision='fp16' needs CUDA; this machine has none. "
            "Use precision='bf16' on CPU (or 'fp32', or leave it unset to "
            'run the teacher in the training precision).')


class TeacherForward:
    """The teacher's ``forward`` run in a fixed precision and memory format.

    Installed as the teacher's instance attribute ``forward`` by
    :func:`set_teacher_precision`, so module paths (taps), the state dict
    and the teacher's class stay as they are. The teacher's weights are
    cast once; each call casts the input batch and runs the forward with
    autocast off, so the teacher computes in ``dtype`` whatever the
    training precision. The tapped features are then in ``dtype``; the
    distiller hands them to the losses as float32.

    Args:
        forward (callable): The teacher's bound ``forward``.
        dtype (torch.dtype, optional): The teacher's dtype; ``None`` keeps
            the training precision (only the memory format changes).
        channels_last (bool): Feed 4-D inputs in channels-last format
            (faster convolutions on CPU with oneDNN, and with tensor cores).
    """

    def __init__(self, forward: Callable, dtype: Optional[torch.dtype],
                 channels_last: bool) -> None:
        self.forward = forward
        self.dtype = dtype
        self.channels_last = channels_last

    def __call__(self, inputs, *args, **kwargs):
        if torch.is_tensor(inputs):
            if self.dtype is not None and inputs.is_floating_point():
                inputs = inputs.to(self.dtype)
            if self.channels_last and inputs.dim() == 4:
                inputs = inputs.contiguous(memory_format=torch.channels_last)
        if self.dtype is None:
            return self.forward(inputs, *args, **kwargs)
        device_type = inputs.device.type if torch.is_tensor(inputs) else 'cpu'
        with torch.autocast(device_type=device_type, enabled=False):
            return self.forward(inputs, *args, **kwargs)


def set_teacher_precision(teacher: nn.Module,
                          precision: Optional[str] = None,
                          channels_last: bool = False) -> nn.Module:
    """Cast a frozen teacher to ``precision`` and memory format, in place.

    Args:
        teacher (nn.Module): The frozen teacher.
        precision (str, optional): ``'fp32'``, ``'bf16'``, ``'fp16'``, or
            ``None`` for the training precision (the teacher then runs
            under the student's autocast context, if any).
        channels_last (bool): Channels-last weights and inputs.

    Returns:
        nn.Module: ``teacher``.
    """
    check_teacher_precision(precision)
    dtype = PRECISIONS[precision] if precision is not None else None
    if dtype is None and not channels_last:
        return teacher
    if dtype is not None:
        teacher.to(dtype)
    if channels_last:
        teacher.to(memory_format=torch.channels_last)
    teacher.forward = TeacherForward(teacher.forward, dtype, channels_last)
    return teacher
