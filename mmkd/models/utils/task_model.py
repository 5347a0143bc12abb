"""Build the task models (students and teachers) of mmpretrain/mmdet/mmseg."""
import copy
import importlib
import logging
import os.path as osp
from typing import Optional, Union

import torch
from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log
from mmengine.model import BaseModel, revert_sync_batchnorm
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import _load_checkpoint
from torch import nn

from .teacher_precision import (check_teacher_precision,
                                set_teacher_precision)

#: The OpenMMLab task libraries mmkd distils, by registry scope.
TASK_SCOPES = ('mmpretrain', 'mmdet', 'mmseg')


def _registry_has(scope: str, type_name: str) -> bool:
    """Whether the model registry of ``scope`` (importable) has the type."""
    try:
        importlib.import_module(f'{scope}.registry')
        registry = ROOT_MODELS._search_child(scope)
        return registry is not None and registry.get(type_name) is not None
    except (ImportError, KeyError):
        return False


def resolve_model_scope(cfg: dict) -> Optional[str]:
    """The registry scope a task model config must be built in.

    In order: its ``_scope_``; the prefix of ``type`` (``'mmdet.FasterRCNN'``);
    the current default scope if it registers ``type``; else the one task
    library that registers it.
    """
    if cfg.get('_scope_'):
        return cfg['_scope_']
    model_type = cfg.get('type')
    if not isinstance(model_type, str):
        return None
    if '.' in model_type:
        return model_type.split('.', 1)[0]
    current = DefaultScope.get_current_instance()
    current = current.scope_name if current is not None else None
    if current in TASK_SCOPES and _registry_has(current, model_type):
        return current
    scopes = [s for s in TASK_SCOPES if _registry_has(s, model_type)]
    if len(scopes) > 1:
        raise ValueError(
            f"model type '{model_type}' is registered in several libraries "
            f'({", ".join(scopes)}); set _scope_ in its config to choose')
    return scopes[0] if scopes else current


def build_task_model(cfg: Union[dict, nn.Module]) -> nn.Module:
    """Build a student/teacher from its config, in its own library's scope."""
    if isinstance(cfg, nn.Module):
        return cfg
    cfg = copy.deepcopy(dict(cfg))
    scope = resolve_model_scope(cfg)
    if scope is not None:
        cfg['_scope_'] = scope
    return ROOT_MODELS.build(cfg)


def load_model_config(config: Union[str, dict, Config]) -> Config:
    """Load a config from a local file or a package (``'mmdet::a/b.py'``)."""
    if isinstance(config, (dict, Config)):
        return Config(dict(config))
    if '::' in config:
        from mmengine.hub import get_config
        return get_config(config)
    if not osp.isfile(config):
        raise FileNotFoundError(
            f"teacher config '{config}' does not exist. Give a local file or "
            "a package config such as 'mmdet::faster_rcnn/"
            "faster-rcnn_r101_fpn_1x_coco.py'.")
    return Config.fromfile(config)


def _first(items, n: int = 5) -> str:
    items = sorted(items)
    more = f' (+{len(items) - n} more)' if len(items) > n else ''
    return ', '.join(items[:n]) + more


def load_teacher_state_dict(model: nn.Module,
                            checkpoint: str,
                            what: str,
                            strict: bool = True) -> None:
    """Load ``checkpoint`` into ``model``.

    With ``strict`` (default) every key and shape must match. With
    ``strict=False`` (checkpoints from another version of the task library,
    EMA copies, a classifier for other classes), the keys present in both
    with equal shapes are loaded and the missing, unexpected and
    shape-mismatched ones are logged as a warning.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: with ``strict``, keys or shapes do not match (names the
            file and the first mismatched keys); without it, no key at all
            fits.
    """
    if not (osp.isfile(checkpoint) or '://' in checkpoint):
        raise FileNotFoundError(
            f"{what} checkpoint '{checkpoint}' does not exist. Train the "
            f'{what} first (tools/train.py) or give the path of its '
            'checkpoint.')
    ckpt = _load_checkpoint(checkpoint, map_location='cpu')
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else ckpt
    state = {(k[7:] if k.startswith('module.') else k): v
             for k, v in state.items()}
    own = model.state_dict()
    missing = set(own) - set(state)
    unexpected = set(state) - set(own)
    bad_shape = {
        k: f'{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}'
        for k in set(own) & set(state)
        if torch.is_tensor(state[k]) and state[k].shape != own[k].shape
    }
    if not (missing or unexpected or bad_shape):
        model.load_state_dict(state, strict=True)
        return
    lines = [f"{what} checkpoint '{checkpoint}' does not fit the "
             f'{what} model ({type(model).__name__}):']
    if missing:
        lines.append(f'  missing keys: {_first(missing)}')
    if unexpected:
        lines.append(f'  unexpected keys: {_first(unexpected)}')
    if bad_shape:
        lines.append(f'  shape mismatch (checkpoint vs model): '
                     f'{_first(bad_shape.values(), 3)}')
    if strict:
        if any(k.startswith('student.') for k in unexpected):
            lines.append('  This looks like an mmkd distiller checkpoint: '
                         'convert it with tools/convert_to_student.py.')
        else:
            lines.append('  Check that the config matches the checkpoint, or '
                         'set strict=False in the teacher dict to load the '
                         'keys that fit.')
        raise ValueError('\n'.join(lines))
    fitting = {k: v for k, v in state.items()
               if k in own and k not in bad_shape}
    if not fitting:
        raise ValueError('\n'.join(lines + [
            '  No key fits, even with strict=False: check that the config '
            'matches the checkpoint.']))
    model.load_state_dict(fitting, strict=False)
    print_log('\n'.join(lines + [
        f'  strict=False: loaded the {len(fitting)} of {len(own)} keys that '
        'fit; the others keep their initial values.']),
              logger='current',
              level=logging.WARNING)


def build_teacher(config: Union[str, dict, Config, None] = None,
                  checkpoint: Optional[str] = None,
                  model: Optional[dict] = None,
                  strict: bool = True,
                  precision: Optional[str] = None,
                  channels_last: bool = False,
                  load_checkpoint: bool = True) -> BaseModel:
    """Build a frozen teacher from a config file/package path or model dict.

    Args:
        config: A config path (local or ``'mmdet::...'``) whose ``model``
            is the teacher. A relative path is resolved by
            :func:`mmkd.utils.resolve_teacher_configs` (relative to the
            config file that names it) when the tools load the config.
        checkpoint: The teacher's trained weights (required).
        model: A model dict, instead of ``config``.
        strict: Every key of the checkpoint and the model must match
            (default). ``False`` loads the keys that fit and logs the rest.
        precision: ``'fp32'``, ``'bf16'`` or ``'fp16'`` (CUDA only): the
            teacher's forward (and only it) runs in that dtype; its tapped
            features reach the losses as float32. ``None`` (default): the
            training precision.
        channels_last: Run the teacher in channels-last memory format.
        load_checkpoint: ``False`` builds the teacher without loading
            ``checkpoint`` (``tools/test.py``: the teacher does not run in
            test, and its file need not exist there).
    """
    if (config is None) == (model is None):
        raise ValueError('teacher: give exactly one of `config` (a config '
                         'path) or `model` (a model dict)')
    check_teacher_precision(precision)
    if config is not None:
        cfg = load_model_config(config)
        model = copy.deepcopy(dict(cfg.model))
        if cfg.get('default_scope') and not model.get('_scope_'):
            model['_scope_'] = cfg.default_scope
    if checkpoint is None and load_checkpoint:
        raise ValueError(
            'teacher: `checkpoint` is required (a teacher with random '
            'weights teaches nothing). Give the path of a trained checkpoint.')
    # init_weights() is never called: the weights come from `checkpoint`, so
    # a backbone's `init_cfg=Pretrained(...)` downloads nothing.
    teacher = build_task_model(ConfigDict(model))
    if load_checkpoint:
        load_teacher_state_dict(teacher, checkpoint, 'teacher', strict=strict)
    # SyncBN equals BN in eval mode, and BN also runs on CPU under gloo.
    teacher = revert_sync_batchnorm(teacher)
    freeze(teacher)
    return set_teacher_precision(teacher, precision, channels_last)


def freeze(model: nn.Module) -> None:
    """Eval mode and ``requires_grad=False`` for every parameter."""
    model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
