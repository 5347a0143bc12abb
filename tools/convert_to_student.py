"""Turn a distiller checkpoint into a plain student checkpoint and config.

The output holds only the student's weights (no teacher, connectors,
discriminators or any mmkd key) and a config whose ``model`` is the student,
so mmpretrain/mmdet/mmseg load both with their own ``init_model`` or
inferencers, without mmkd installed.

The checkpoint is read with ``torch.load(weights_only=True)`` and only
MMEngine's own globals allowed: a file that would run code when unpickled is
refused and nothing is written.

Usage:
    python tools/convert_to_student.py CONFIG CHECKPOINT OUT.pth
Writes OUT.pth and OUT.py (the student config).
"""
import argparse
import os.path as osp
import sys
from collections import OrderedDict

import torch
from mmengine.config import Config

from mmkd.utils.checkpoint_globals import (UnsafeCheckpointError,
                                           load_checkpoint_safely)


def student_state_dict(state_dict: dict, prefix: str = 'student.') -> dict:
    """The ``student.*`` entries of a distiller state dict, prefix removed."""
    out = OrderedDict((k[len(prefix):], v) for k, v in state_dict.items()
                      if k.startswith(prefix))
    if not out:
        raise ValueError(
            f'the checkpoint has no "{prefix}*" weights: it is not an mmkd '
            'distiller checkpoint (a plain task checkpoint needs no '
            'conversion)')
    return out


def _is_mmkd(value) -> bool:
    """A string naming mmkd (``'mmkd'``, ``'mmkd.X'``) or a class of it."""
    if isinstance(value, str):
        return value == 'mmkd' or value.startswith('mmkd.')
    if isinstance(value, type):
        return _is_mmkd(getattr(value, '__module__', ''))
    return False


#: Config keys whose value names something a registry builds.
_BUILD_KEYS = ('type', 'constructor')


def references_mmkd(value) -> bool:
    """Whether a config value builds anything from mmkd (a ``type`` or
    ``constructor`` of ``'mmkd.*'`` or an mmkd class, or ``_scope_='mmkd'``,
    at any depth)."""
    if isinstance(value, dict):
        if (any(_is_mmkd(value.get(k)) for k in _BUILD_KEYS)
                or value.get('_scope_') == 'mmkd'):
            return True
        return any(references_mmkd(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(references_mmkd(v) for v in value)
    return False


def _mmkd_paths(value, path: str) -> list:
    """Config paths (``a.b[0].type``) that name mmkd."""
    found = []
    if isinstance(value, dict):
        for k, v in value.items():
            sub = f'{path}.{k}' if path else str(k)
            if (k in _BUILD_KEYS or k == '_scope_') and _is_mmkd(v):
                found.append(sub)
            else:
                found += _mmkd_paths(v, sub)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            found += _mmkd_paths(v, f'{path}[{i}]')
    return found


#: Top-level sub-modules of mmkd's distillers other than the student.
_DISTILLER_PARTS = ('teacher.', 'connectors.', 'distill_losses.', 'critic.')


def _strip_prefix_keys(wrapper: dict, prefix: str) -> None:
    """Rename ``paramwise_cfg.custom_keys`` of a distiller wrapper to the
    student's parameter names: ``'student.backbone'`` -> ``'backbone'``;
    keys of other distiller parts (``'connectors.'``) are dropped. (MMEngine
    matches a key as a substring of the parameter name, so a stripped key
    may match more names than before, e.g. ``'head'`` in
    ``'decode_head'``.)"""
    keys = (wrapper.get('paramwise_cfg') or {}).get('custom_keys')
    if not keys:
        return
    out = {}
    for key, value in keys.items():
        if key.startswith(prefix):
            out[key[len(prefix):]] = value
        elif not any(key.startswith(p) for p in _DISTILLER_PARTS):
            out[key] = value
    wrapper['paramwise_cfg']['custom_keys'] = out


def _student_optim_wrapper(cfg: Config) -> None:
    """mmkd's per-part optimizer wrappers
    (``DistillerOptimWrapperConstructor``, e.g. SKD's student and critic)
    -> the student's own wrapper, and the per-part schedulers
    ``dict(student=[...], critic=[...])`` -> the student's list."""
    ow = cfg.get('optim_wrapper')
    if not isinstance(ow, dict):
        return
    if _is_mmkd(ow.get('constructor')) or ow.get(
            'constructor') == 'DistillerOptimWrapperConstructor':
        rest_key = ow.get('rest_key', 'student')
        if not isinstance(ow.get(rest_key), dict):
            raise ValueError(
                f'optim_wrapper uses {ow["constructor"]} but has no '
                f'`{rest_key}` wrapper')
        wrapper = dict(ow[rest_key])
        _strip_prefix_keys(wrapper, 'student.')
        cfg.optim_wrapper = wrapper
        sched = cfg.get('param_scheduler')
        if isinstance(sched, dict) and 'type' not in sched:
            if rest_key in sched:
                cfg.param_scheduler = sched[rest_key]
            else:
                cfg.pop('param_scheduler')
    else:
        _strip_prefix_keys(ow, 'student.')
    # mmkd's own wrapper types (e.g. the CPU autocast one of --amp) do not
    # exist without mmkd: plain float32 wrapper (the library's own --amp
    # switches it to mixed precision again)
    wrapper = cfg.optim_wrapper
    if _is_mmkd(wrapper.get('type')):
        print(f'optim_wrapper: {wrapper["type"]} is mmkd\'s: the student '
              'config uses OptimWrapper (train with --amp for mixed '
              'precision)')
        wrapper['type'] = 'OptimWrapper'
        wrapper.pop('dtype', None)


#: Top-level keys MMEngine's ``Runner.from_cfg`` reads.
_RUNNER_KEYS = ('work_dir', 'train_dataloader', 'val_dataloader',
                'test_dataloader', 'train_cfg', 'val_cfg', 'test_cfg',
                'auto_scale_lr', 'val_evaluator', 'test_evaluator',
                'data_preprocessor', 'launcher', 'env_cfg', 'log_processor',
                'log_level', 'visualizer', 'default_scope', 'randomness',
                'experiment_name')

#: Top-level keys that are handled one by one below.
_HANDLED = ('model', 'custom_imports', 'custom_hooks', 'optim_wrapper',
            'param_scheduler', 'default_hooks')


def student_config(cfg: Config) -> Config:
    """The distiller config with ``model`` replaced by the student and every
    mmkd reference removed, so that the student trains and tests with its
    own library without mmkd:

    * ``optim_wrapper`` of ``DistillerOptimWrapperConstructor`` -> the
      ``student`` wrapper (``custom_keys`` renamed to the student's
      parameter names), ``param_scheduler=dict(student=..., critic=...)``
      -> the student's list, an mmkd wrapper type -> ``OptimWrapper``;
    * mmkd hooks in ``custom_hooks`` and ``default_hooks`` dropped;
    * ``custom_imports`` of mmkd dropped; ``model_wrapper_cfg``, ``resume``
      and ``load_from`` dropped;
    * top-level helper variables that reference mmkd dropped.

    The only mmkd trace kept is ``custom_imports=['mmkd']`` when the student
    network itself is one of mmkd's (e.g. ``mmkd.CIFARResNet``, the papers'
    CIFAR backbones): such a checkpoint cannot be loaded without mmkd.

    Raises:
        ValueError: If the config is not a distiller's, or if mmkd is still
            named outside the student after these steps.
    """
    if 'student' not in cfg.model:
        raise ValueError('the config model has no `student`: not an mmkd '
                         'distiller config')
    out = Config(cfg.to_dict() if hasattr(cfg, 'to_dict') else dict(cfg))
    student = out.model.student
    student.pop('_scope_', None)
    out.model = student
    _student_optim_wrapper(out)
    # Helper variables of the distiller configs (e.g. `reviewkd`, `frskd`)
    # that the Runner never reads (a key it reads is never dropped: an mmkd
    # reference left there fails below).
    for key in [k for k in out if k not in _HANDLED + _RUNNER_KEYS]:
        if references_mmkd(out[key]):
            out.pop(key)
    imports = out.get('custom_imports', {}).get('imports', [])
    imports = [m for m in imports if not _is_mmkd(m)]
    if references_mmkd(student):
        imports.append('mmkd')
    if imports:
        out.setdefault('custom_imports', dict(allow_failed_imports=False))
        out.custom_imports['imports'] = imports
    else:
        out.pop('custom_imports', None)
    if 'custom_hooks' in out:
        out.custom_hooks = [
            h for h in out.custom_hooks if not references_mmkd(h)
        ]
    if isinstance(out.get('default_hooks'), dict):
        for name in [
                k for k, h in out.default_hooks.items()
                if references_mmkd(h)
        ]:
            out.default_hooks.pop(name)
    if out.get('default_scope') == 'mmkd':
        raise ValueError('default_scope is mmkd; set the task library scope')
    for key in ('model_wrapper_cfg', 'resume', 'load_from'):
        out.pop(key, None)
    left = [
        p for p in _mmkd_paths(out.to_dict(), '')
        if not p.startswith('model.')
    ]
    if left:
        raise ValueError(
            'the student config would still need mmkd at ' +
            ', '.join(left) + ': replace them with the task library\'s '
            'own components before converting')
    return out


def convert(config: str, checkpoint: str, out_file: str) -> None:
    if osp.abspath(out_file) == osp.abspath(checkpoint):
        raise ValueError('the output file must differ from the input '
                         'checkpoint (it would be overwritten)')
    # weights_only: a downloaded checkpoint cannot run code
    ckpt = load_checkpoint_safely(checkpoint)
    state = ckpt.get('state_dict', ckpt)
    meta = {
        k: v
        for k, v in ckpt.get('meta', {}).items()
        if k in ('dataset_meta', 'epoch', 'iter', 'seed', 'mmengine_version')
    }
    torch.save(dict(meta=meta, state_dict=student_state_dict(state)),
               out_file)
    cfg = student_config(Config.fromfile(config))
    cfg_file = osp.splitext(out_file)[0] + '.py'
    cfg.dump(cfg_file)
    print(f'student checkpoint: {out_file}\nstudent config: {cfg_file}')


def main():
    parser = argparse.ArgumentParser(
        description='Convert a distiller checkpoint to a student checkpoint')
    parser.add_argument('config', help='the distiller config')
    parser.add_argument('checkpoint', help='the distiller checkpoint')
    parser.add_argument('out', help='output student checkpoint (.pth)')
    args = parser.parse_args()
    try:
        convert(args.config, args.checkpoint, args.out)
    except UnsafeCheckpointError as err:
        sys.exit(f'convert_to_student: {err}')


if __name__ == '__main__':
    main()
