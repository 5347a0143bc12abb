"""Process set-up shared by the tools: warnings, checkpoints, CPU launch."""
import logging
import os
import warnings
from typing import Any, Optional

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.logging import print_log

from .checkpoint_globals import allow_mmengine_checkpoint_globals
from .teacher_config import resolve_teacher_configs

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


def _model_class(cfg: Config):
    """The class of ``cfg.model`` in mmkd's registry (None if unknown)."""
    from mmkd.registry import MODELS
    model = cfg.get('model')
    kind = model.get('type') if isinstance(model, dict) else None
    if isinstance(kind, type):
        return kind
    if not isinstance(kind, str):
        return None
    try:
        return MODELS.get(kind)
    except Exception:  # a scope that is not importable here
        return None


def select_model_wrapper(cfg: Config) -> None:
    """Choose the DDP wrapper of a distiller for a multi-process run.

    MMEngine's default ``MMDistributedDataParallel`` runs its own train step,
    which skips the distiller's: the non-finite guard of a
    :class:`~mmkd.models.Distiller` and the critic step of an
    :class:`~mmkd.models.AdversarialDistiller`. So, when the config names
    no wrapper type, the model class's ``ddp_wrapper`` is set
    (``mmkd.DistillerDistributedDataParallel``, resp. MMEngine's
    ``MMSeparateDistributedDataParallel``) with the Runner's defaults
    (``broadcast_buffers=False``, the config's ``find_unused_parameters``),
    and logged. A plain ``MMDistributedDataParallel`` given for a
    ``Distiller`` is replaced by mmkd's subclass (same arguments). No-op
    without a launcher or for models that are not distillers.

    Raises:
        ValueError: If an ``AdversarialDistiller`` is given a wrapper that
            does not call its ``train_step`` per part.
    """
    if cfg.get('launcher', 'none') == 'none':
        return
    model_cls = _model_class(cfg)
    wanted = getattr(model_cls, 'ddp_wrapper', None)
    if wanted is None:
        return
    from mmengine.model import (MMDistributedDataParallel,
                                MMSeparateDistributedDataParallel)
    from mmengine.registry import MODEL_WRAPPERS
    given = cfg.get('model_wrapper_cfg')
    wrapper = dict(given or {})
    name = model_cls.__name__
    if 'type' not in wrapper:
        if given is None:
            wrapper.update(
                broadcast_buffers=False,
                find_unused_parameters=cfg.get('find_unused_parameters',
                                               False))
        wrapper['type'] = wanted
        print_log(
            f'{name} on several processes: model_wrapper_cfg.type set to '
            f"'{wanted}' (MMEngine's default DDP wrapper would bypass the "
            f"{name}'s train_step).",
            logger='current')
        cfg.model_wrapper_cfg = wrapper
        return
    kind = wrapper['type']
    given_cls = kind if isinstance(kind, type) else MODEL_WRAPPERS.get(kind)
    wanted_cls = MODEL_WRAPPERS.get(wanted)
    if given_cls is None or wanted_cls is None:
        raise ValueError(f'model_wrapper_cfg.type={kind!r} is not a '
                         'registered model wrapper')
    if issubclass(given_cls, wanted_cls):
        return
    if wanted_cls is MMSeparateDistributedDataParallel:
        raise ValueError(
            f'{name} needs model_wrapper_cfg=dict(type='
            f"'MMSeparateDistributedDataParallel'), got {kind!r}: the critic "
            f'is trained in the {name}\'s own train_step, with its own '
            'optimizer, and the parts must be wrapped one by one; a '
            'whole-model DDP wrapper runs one forward/backward of the whole '
            'model and never calls it.')
    if given_cls is MMDistributedDataParallel:
        wrapper['type'] = wanted
        print_log(
            f'{name}: model_wrapper_cfg.type MMDistributedDataParallel '
            f"replaced by its subclass '{wanted}', whose train_step is the "
            f"{name}'s (non-finite losses and gradients skip a step).",
            logger='current')
        cfg.model_wrapper_cfg = wrapper
        return
    print_log(
        f'{name} under model_wrapper_cfg.type={kind!r}: the non-finite '
        "guard of the distiller's train_step runs only if this wrapper calls "
        f"the model's train_step ({wanted} does).",
        logger='current',
        level=logging.WARNING)


def check_critic_param_scheduler(cfg: Config) -> None:
    """Warn when a model with a critic (:class:`AdversarialDistiller`, one
    optimizer wrapper per part) has one ``param_scheduler`` list: MMEngine
    then builds the same schedule for every wrapper, so the critic silently
    follows the student's schedule.

    Raises:
        ValueError: If ``param_scheduler`` is a per-wrapper dict that lacks
            one of the optimizer wrappers (MMEngine would fail with a bare
            ``KeyError``).
    """
    model_cls = _model_class(cfg)
    from mmkd.models.distillers import AdversarialDistiller
    if model_cls is None or not issubclass(model_cls, AdversarialDistiller):
        return
    ow = cfg.get('optim_wrapper')
    parts = [k for k, v in (ow or {}).items()
             if isinstance(v, dict) and 'optimizer' in v]
    scheduler = cfg.get('param_scheduler')
    if not parts or scheduler is None:
        return
    if isinstance(scheduler, dict) and 'type' not in scheduler:
        missing = [p for p in parts if p not in scheduler]
        if missing:
            raise ValueError(
                f'param_scheduler has schedules for {sorted(scheduler)} but '
                f'not for the optimizer wrapper(s) {missing}; give one list '
                'per wrapper, e.g. param_scheduler=dict(student=[...], '
                'critic=[...]) (an empty list for a constant learning rate)')
        return
    print_log(
        f'{model_cls.__name__}: param_scheduler is one schedule, so MMEngine '
        f'applies it to every optimizer wrapper ({", ".join(parts)}): the '
        "critic follows the student's schedule. To give the critic its own, "
        'set param_scheduler=dict(student=[...], critic=[...]) (critic=[] '
        'keeps its learning rate constant).',
        logger='current',
        level=logging.WARNING)


def setup_cpu_distributed(cfg: Config) -> None:
    """Make MMEngine's ``pytorch`` launcher work on machines without CUDA.

    MMEngine calls ``torch.cuda.set_device(LOCAL_RANK)`` and wraps the model
    with ``device_ids=[LOCAL_RANK]``; both fail on CPU. Here the process group
    is initialised with gloo before the Runner is built (the Runner then skips
    its own init), DDP gets ``device_ids=None`` and SyncBN (which refuses CPU
    tensors under gloo) becomes BN. A distiller gets its DDP wrapper
    (:func:`select_model_wrapper`).
    """
    if cfg.get('launcher', 'none') == 'none' or torch.cuda.is_available():
        return
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    select_model_wrapper(cfg)
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


def enable_amp(cfg: Config,
               dtype: Optional[str] = None,
               fp32_wrappers: tuple = ('critic', ),
               cuda: Optional[bool] = None) -> None:
    """Switch a config's optimizer wrapper(s) to mixed precision (``--amp``).

    With CUDA: MMEngine's ``AmpOptimWrapper`` (float16 with a dynamic loss
    scale, as mmdet's and mmseg's ``--amp``; ``dtype='bfloat16'`` selects
    bfloat16). Without CUDA: :class:`~mmkd.engine.AutocastOptimWrapper`,
    bfloat16 autocast on the CPU without a loss scaler (``AmpOptimWrapper``
    asserts that a GPU is present, and float16 is refused on CPU).

    A distiller with one wrapper per part
    (``constructor='mmkd.DistillerOptimWrapperConstructor'``, SKD's student
    and critic) gets it on every part except ``fp32_wrappers``: the WGAN-GP
    critic stays in float32, because its gradient penalty differentiates the
    critic's output with ``torch.autograd.grad``, which no loss scaler
    protects from float16 underflow (its step runs outside the student's
    autocast context).

    Args:
        cfg (Config): The config, changed in place.
        dtype (str, optional): ``'float16'`` or ``'bfloat16'``. Defaults to
            float16 with CUDA, bfloat16 without.
        fp32_wrappers (tuple): Parts that stay float32.
        cuda (bool, optional): Whether the run is on CUDA. Defaults to
            ``torch.cuda.is_available()``.

    Raises:
        ValueError: If the config has no optimizer wrapper to switch, or
            float16 is asked for without CUDA.
    """
    ow = cfg.get('optim_wrapper')
    if not isinstance(ow, dict):
        raise ValueError('--amp: the config has no `optim_wrapper` dict')
    aliases = {'fp16': 'float16', 'bf16': 'bfloat16'}
    dtype = aliases.get(dtype, dtype)
    if dtype not in (None, 'float16', 'bfloat16'):
        raise ValueError(f"--amp-dtype must be 'float16' or 'bfloat16', "
                         f'got {dtype!r}')
    if cuda is None:
        cuda = torch.cuda.is_available()
    if dtype == 'float16' and not cuda:
        raise ValueError(
            '--amp-dtype float16 needs CUDA (CPU autocast computes in '
            'bfloat16); drop --amp-dtype or use --amp-dtype bfloat16')

    def switch(wrapper: dict) -> None:
        if cuda:  # MMEngine's wrapper, keeping a loss scale given
            wrapper['type'] = 'AmpOptimWrapper'
            wrapper.setdefault('loss_scale', 'dynamic')
            if dtype is not None:
                wrapper['dtype'] = dtype
        else:
            wrapper.pop('loss_scale', None)
            wrapper.update(type='mmkd.AutocastOptimWrapper', dtype='bfloat16')

    if 'optimizer' in ow:
        switch(ow)
        return
    parts = [k for k, v in ow.items() if isinstance(v, dict)
             and 'optimizer' in v]
    if not parts:
        raise ValueError(
            '--amp: `optim_wrapper` holds no optimizer wrapper config (a '
            'dict with an `optimizer`, directly or per part of a distiller)')
    for name in parts:
        if name not in fp32_wrappers:
            switch(ow[name])


def setup_process(cfg: Config) -> None:
    """Everything a tool does before building the Runner."""
    filter_known_warnings()
    allow_mmengine_checkpoint_globals()
    resolve_teacher_configs(cfg)
    select_model_wrapper(cfg)  # GPU runs too; setup_cpu_distributed repeats
    setup_cpu_distributed(cfg)
    check_critic_param_scheduler(cfg)


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
