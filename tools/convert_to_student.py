"""Turn a distiller checkpoint into a plain student checkpoint and config.

The output holds only the student's weights (no teacher, connectors,
discriminators or any mmkd key) and a config whose ``model`` is the student,
so mmpretrain/mmdet/mmseg load both with their own ``init_model`` or
inferencers, without mmkd installed.

Usage:
    python tools/convert_to_student.py CONFIG CHECKPOINT OUT.pth
Writes OUT.pth and OUT.py (the student config).
"""
import argparse
import os.path as osp
from collections import OrderedDict

import torch
from mmengine.config import Config


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
    return isinstance(value, str) and (value == 'mmkd'
                                       or value.startswith('mmkd.'))


def references_mmkd(value) -> bool:
    """Whether a config value builds anything from mmkd (a ``type`` of
    ``'mmkd.*'`` or ``_scope_='mmkd'``, at any depth)."""
    if isinstance(value, dict):
        if _is_mmkd(value.get('type')) or value.get('_scope_') == 'mmkd':
            return True
        return any(references_mmkd(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(references_mmkd(v) for v in value)
    return False


#: Top-level keys that are handled one by one below.
_HANDLED = ('model', 'custom_imports', 'custom_hooks')


def student_config(cfg: Config) -> Config:
    """The distiller config with ``model`` replaced by the student and every
    mmkd reference (imports, hooks, wrapper, helper variables) removed.

    The only mmkd trace kept is ``custom_imports=['mmkd']`` when the student
    network itself is one of mmkd's (e.g. ``mmkd.CIFARResNet``, the papers'
    CIFAR backbones): such a checkpoint cannot be loaded without mmkd.
    """
    if 'student' not in cfg.model:
        raise ValueError('the config model has no `student`: not an mmkd '
                         'distiller config')
    out = Config(cfg.to_dict() if hasattr(cfg, 'to_dict') else dict(cfg))
    student = out.model.student
    student.pop('_scope_', None)
    out.model = student
    # Helper variables of the distiller configs (e.g. `reviewkd`, `frskd`)
    # that the Runner never reads.
    for key in [k for k in out if k not in _HANDLED]:
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
            h for h in out.custom_hooks if not _is_mmkd(h.get('type', ''))
            and h.get('_scope_') != 'mmkd'
        ]
    if out.get('default_scope') == 'mmkd':
        raise ValueError('default_scope is mmkd; set the task library scope')
    for key in ('model_wrapper_cfg', 'resume', 'load_from'):
        out.pop(key, None)
    return out


def convert(config: str, checkpoint: str, out_file: str) -> None:
    if osp.abspath(out_file) == osp.abspath(checkpoint):
        raise ValueError('the output file must differ from the input '
                         'checkpoint (it would be overwritten)')
    ckpt = torch.load(checkpoint, map_location='cpu', weights_only=False)
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
    convert(args.config, args.checkpoint, args.out)


if __name__ == '__main__':
    main()
