"""Distributed and single-process checkpoints of a distiller: same keys."""
from mmengine.model import is_model_wrapper
from torch import nn


def unwrap_state_dict_keys(module: nn.Module, state_dict: dict, prefix: str,
                           local_metadata: dict) -> None:
    """State-dict post-hook: drop the ``module.`` that a per-part DDP
    wrapper (``MMSeparateDistributedDataParallel`` wraps ``student``,
    ``critic``... separately) inserts, so distributed and single-process
    checkpoints have the same keys (``student.backbone...``). MMEngine's
    checkpoint loader already unwraps model wrappers when loading."""
    renames = {
        f'{prefix}{name}.module': f'{prefix}{name}'
        for name, child in module._modules.items()
        if child is not None and is_model_wrapper(child)
    }
    if not renames:
        return

    def rename(key: str) -> str:
        for old, new in renames.items():
            if key == old or key.startswith(old + '.'):
                return new + key[len(old):]
        return key

    items = [(k, state_dict.pop(k)) for k in list(state_dict)
             if k.startswith(prefix)]
    for key, value in items:
        state_dict[rename(key)] = value
    metadata = getattr(state_dict, '_metadata', None)
    if metadata is not None:
        for key in [k for k in metadata if rename(k) != k]:
            metadata[rename(key)] = metadata.pop(key)


def register_unwrap_hook(module: nn.Module) -> None:
    """Register :func:`unwrap_state_dict_keys` on ``module`` (public API of
    torch >= 2.3, the private one before)."""
    register = getattr(module, 'register_state_dict_post_hook', None)
    (register or module._register_state_dict_hook)(unwrap_state_dict_keys)
