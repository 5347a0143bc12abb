"""Process set-up shared by the tools: warnings, checkpoints, CPU launch."""
import os
import warnings
from typing import Any

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.logging import print_log

from .checkpoint_globals import allow_mmengine_checkpoint_globals

#: Known, harmless warnings of the OpenMMLab stack that flood the logs.
_KNOWN_WARNINGS = (
    r'.*pkg_resources is deprecated.*',
    r'.*``build_loss`` would be deprecated.*',
    r'.*Fail to import ``MultiScaleDeformableAttention``.*',
    r'.*On January 1, 2023, MMCV will release v2.0.0.*',
    r'.*The `clip_grad` in optimizer.*',
    r'.*torch.meshgrid: in an upcoming release.*',
    r'.*Importing from timm.models.layers is deprecated.*',
    r'.*TypedStorage is deprecated.*',
    r'.*`torch.cuda.amp.*` is deprecated.*',
    r'.*`torch.cpu.amp.*` is deprecated.*',
    r'.*Deprecated call to `pkg_resources.declare_namespace.*',
)


def filter_known_warnings() -> None:
    """Silence the known, harmless warnings so training progress shows."""
    for pattern in _KNOWN_WARNINGS:
        warnings.filterwarnings('ignore', message=pattern)
    warnings.filterwarnings('ignore', category=DeprecationWarning)


def replace_sync_bn(cfg: Any) -> Any:
    """Copy of a config with every ``SyncBN`` norm replaced by ``BN``."""
    if isinstance(cfg, dict):
        out = {k: replace_sync_bn(v) for k, v in cfg.items()}
        if out.get('type') in ('SyncBN', 'MMSyncBN'):
            out['type'] = 'BN'
        return type(cfg)(out) if not isinstance(cfg, Config) else out
    if isinstance(cfg, (list, tuple)):
        return type(cfg)(replace_sync_bn(v) for v in cfg)
    return cfg


def setup_cpu_distributed(cfg: Config) -> None:
    """Make MMEngine's ``pytorch`` launcher work on machines without CUDA.

    MMEngine calls ``torch.cuda.set_device(LOCAL_RANK)`` and wraps the model
    with ``device_ids=[LOCAL_RANK]``; both fail on CPU. Here the process group
    is initialised with gloo before the Runner is built (the Runner then skips
    its own init), DDP gets ``device_ids=None`` and SyncBN (which refuses CPU
    tensors under gloo) becomes BN.
    """
    if cfg.get('launcher', 'none') == 'none' or torch.cuda.is_available():
        return
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    wrapper = dict(cfg.get('model_wrapper_cfg') or {})
    wrapper.setdefault('type', 'MMDistributedDataParallel')
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    model = replace_sync_bn(cfg.model.to_dict() if hasattr(
        cfg.model, 'to_dict') else cfg.model)
    if model != cfg.model:
        print_log(
            'No CUDA: SyncBN layers of the model are built as BN for this '
            'CPU (gloo) run.',
            logger='current')
    cfg.model = model
    os.environ.setdefault('OMP_NUM_THREADS', '1')


def enable_amp(cfg: Config, fp32_wrappers: tuple = ('critic', )) -> None:
    """Switch a config's optimizer wrapper(s) to ``AmpOptimWrapper``.

    A single wrapper (``optim_wrapper=dict(optimizer=...)``) becomes
    ``AmpOptimWrapper`` with a dynamic loss scale, as mmdet's and mmseg's
    ``--amp``. A distiller with one wrapper per part
    (``constructor='mmkd.DistillerOptimWrapperConstructor'``, SKD's student
    and critic) gets AMP on every part except ``fp32_wrappers``: the WGAN-GP
    critic stays in float32, because its gradient penalty differentiates
    the critic's output with ``torch.autograd.grad``, which no loss scaler
    protects from float16 underflow (its step runs outside the student's
    autocast context).

    Raises:
        ValueError: If the config has no optimizer wrapper to switch.
    """
    ow = cfg.get('optim_wrapper')
    if not isinstance(ow, dict):
        raise ValueError('--amp: the config has no `optim_wrapper` dict')
    if 'optimizer' in ow:
        ow['type'] = 'AmpOptimWrapper'
        ow.setdefault('loss_scale', 'dynamic')
        return
    parts = [k for k, v in ow.items() if isinstance(v, dict)
             and 'optimizer' in v]
    if not parts:
        raise ValueError(
            '--amp: `optim_wrapper` holds no optimizer wrapper config (a '
            'dict with an `optimizer`, directly or per part of a distiller)')
    for name in parts:
        if name not in fp32_wrappers:
            ow[name]['type'] = 'AmpOptimWrapper'
            ow[name].setdefault('loss_scale', 'dynamic')


def setup_process(cfg: Config) -> None:
    """Everything a tool does before building the Runner."""
    filter_known_warnings()
    allow_mmengine_checkpoint_globals()
    setup_cpu_distributed(cfg)


def exit_distributed() -> None:
    """End a multi-process run cleanly (no-op without a process group).

    With gloo (CPU), a rank whose peer has already closed its sockets can
    abort in a C++ destructor at interpreter exit ('terminate called without
    an active exception', exit code -6) although training finished. So the
    ranks meet, tear the group down, flush the logs and leave without
    running those destructors.
    """
    if not dist.is_initialized():
        return
    import logging
    import sys
    backend = dist.get_backend()
    dist.barrier()
    dist.destroy_process_group()
    if backend == 'gloo':
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
