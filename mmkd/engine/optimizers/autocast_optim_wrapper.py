"""Mixed-precision training without a loss scaler (bfloat16), on any device."""
from contextlib import contextmanager
from typing import Union

import torch
from mmengine.optim import OptimWrapper
from torch import nn

from mmkd.registry import OPTIM_WRAPPERS
from .float32_mmcv_ops import float32_mmcv_ops

#: Names accepted for ``dtype``.
_DTYPES = {
    'bfloat16': torch.bfloat16,
    'bf16': torch.bfloat16,
    'float16': torch.float16,
    'fp16': torch.float16,
}


def model_device_type(model: nn.Module) -> str:
    """``'cpu'``, ``'cuda'``, ... of a model's first parameter (or buffer).
    """
    for tensor in model.parameters():
        return tensor.device.type
    for tensor in model.buffers():
        return tensor.device.type
    return 'cpu'


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """An :class:`~mmengine.optim.OptimWrapper` whose forward runs under
    ``torch.autocast`` in ``dtype`` on the model's own device, CPU included.

    MMEngine's ``AmpOptimWrapper`` asserts that a GPU is present, and its
    loss scaler exists for float16, whose exponent range makes small
    gradients underflow. bfloat16 has float32's exponent range, so it needs
    no scaler: backward and step are those of the plain ``OptimWrapper``,
    and checkpoints hold the optimizer state only (no ``loss_scaler``).
    The parameters, their gradients and the optimizer state stay float32;
    autocast runs convolutions and matrix products in bfloat16, which halves
    the activations' memory. Speed depends on the CPU: a CIFAR ResNet-18
    step measured about 1.2-1.6x *slower* than float32 on an Intel Xeon with
    ``avx512_bf16`` but no AMX, 2.2x faster on an AMD EPYC with
    ``avx512_bf16`` and 2.0x faster on an Intel Xeon with AMX
    (docs/en/benchmark.md); ``tools/benchmark.py --amp-check`` measures it
    on the CPU at hand.

    ``--amp`` of ``tools/train.py`` selects it on machines without CUDA
    (see :func:`mmkd.utils.enable_amp`); on CUDA, float16 with MMEngine's
    ``AmpOptimWrapper`` (loss scaling) stays the default.

    Args:
        dtype (str | torch.dtype): ``'bfloat16'`` (default). ``'float16'``
            is refused: it needs a loss scaler (use ``AmpOptimWrapper`` on
            CUDA).
        **kwargs: As :class:`~mmengine.optim.OptimWrapper` (``optimizer``,
            ``accumulative_counts``, ``clip_grad``).
    """

    def __init__(self,
                 dtype: Union[str, torch.dtype] = 'bfloat16',
                 **kwargs) -> None:
        if isinstance(dtype, str):
            if dtype not in _DTYPES:
                raise ValueError(
                    f'AutocastOptimWrapper: dtype={dtype!r} is not one of '
                    f'{sorted(_DTYPES)}')
            dtype = _DTYPES[dtype]
        if dtype == torch.float16:
            raise ValueError(
                'AutocastOptimWrapper trains in bfloat16 without a loss '
                'scaler; float16 needs one. Use '
                "optim_wrapper=dict(type='AmpOptimWrapper', dtype='float16', "
                "loss_scale='dynamic') on CUDA, or dtype='bfloat16'.")
        if dtype != torch.bfloat16:
            raise ValueError(
                f'AutocastOptimWrapper: dtype must be bfloat16, got {dtype}')
        super().__init__(**kwargs)
        self.cast_dtype = dtype

    @contextmanager
    def optim_context(self, model: nn.Module):
        """Gradient-accumulation context of ``OptimWrapper`` plus autocast
        on the model's device type; mmcv's NMS and RoIAlign, which have no
        bfloat16 kernels, compute in float32 (:func:`float32_mmcv_ops`)."""
        with super().optim_context(model), torch.autocast(
                device_type=model_device_type(model),
                dtype=self.cast_dtype), float32_mmcv_ops():
            yield
