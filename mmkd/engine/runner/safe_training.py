"""Switch a config to mmkd's crash-safe checkpoints and exact-resume loops."""
import logging

from mmengine.config import Config
from mmengine.logging import print_log

#: MMEngine's loops and what ``enable_safe_checkpoints`` puts in their place.
_LOOPS = {
    'EpochBasedTrainLoop': 'mmkd.ExactResumeEpochBasedTrainLoop',
    'IterBasedTrainLoop': 'mmkd.ExactResumeIterBasedTrainLoop',
}


def _type_name(obj) -> str:
    return obj if isinstance(obj, str) else getattr(obj, '__name__', '')


def _is_mmengine(obj, names) -> bool:
    """Whether a config's ``type`` is one of MMEngine's classes ``names``."""
    if isinstance(obj, str):
        return obj in names or obj in {f'mmengine.{n}' for n in names}
    return getattr(obj, '__module__', '').startswith('mmengine') and \
        getattr(obj, '__name__', '') in names


def uses_mmkd(cfg: Config) -> bool:
    """Whether the config already needs mmkd: it imports mmkd, or its model
    or default scope is mmkd's (a distillation config)."""
    imports = (cfg.get('custom_imports') or {}).get('imports', [])
    imports = [imports] if isinstance(imports, str) else imports
    model = cfg.get('model') or {}
    return any(i == 'mmkd' or str(i).startswith('mmkd.') for i in imports) \
        or cfg.get('default_scope') == 'mmkd' \
        or model.get('_scope_') == 'mmkd' \
        or str(model.get('type', '')).startswith('mmkd.')


def enable_safe_checkpoints(cfg: Config, force: bool = False) -> bool:
    """Use ``mmkd.SafeCheckpointHook`` and mmkd's exact-resume loops.

    ``default_hooks.checkpoint`` of type ``CheckpointHook`` (or none given:
    MMEngine's default ``CheckpointHook(interval=1)``) becomes
    ``mmkd.SafeCheckpointHook`` with the same arguments; ``train_cfg`` of
    ``EpochBasedTrainLoop``/``IterBasedTrainLoop`` (or ``by_epoch=True/
    False``) becomes ``mmkd.ExactResumeEpochBasedTrainLoop``/
    ``mmkd.ExactResumeIterBasedTrainLoop``, same arguments. Other types
    (a user's own hook or loop: the log says so) and a disabled checkpoint
    hook (``checkpoint=None``) are kept.

    Only a config that already needs mmkd (:func:`uses_mmkd`) is changed,
    unless ``force``: a plain task config (a teacher or a baseline) keeps
    MMEngine's types, so that the copy the Runner dumps into the work dir
    stays readable by the task library alone; adding
    ``custom_imports = dict(imports=['mmkd'])`` to it opts in. Edits
    ``cfg`` in place. See docs/en/reliability.md.

    Returns:
        bool: Whether the config was switched.
    """
    if not force and not uses_mmkd(cfg):
        print_log(
            "A plain task config (it does not import mmkd): MMEngine's "
            'CheckpointHook and train loop are kept. Add custom_imports = '
            "dict(imports=['mmkd']) for mmkd's atomic checkpoints and exact "
            'resume (docs/en/reliability.md)',
            logger='current')
        return False
    hooks = cfg.get('default_hooks')
    if hooks is None:
        cfg.default_hooks = dict()
        hooks = cfg.default_hooks  # the ConfigDict the config holds
    if 'checkpoint' not in hooks:
        hooks['checkpoint'] = dict(type='CheckpointHook', interval=1)
    ckpt = hooks['checkpoint']
    if isinstance(ckpt, dict):
        name = _type_name(ckpt.get('type'))
        if _is_mmengine(ckpt.get('type'), ('CheckpointHook', )):
            ckpt['type'] = 'mmkd.SafeCheckpointHook'
            print_log(
                'default_hooks.checkpoint: CheckpointHook -> '
                'mmkd.SafeCheckpointHook (same arguments): atomic checkpoint '
                'writes, resume from a complete checkpoint, generator states '
                'saved for an exact resume',
                logger='current')
        elif name.split('.')[-1] != 'SafeCheckpointHook':
            print_log(
                f'default_hooks.checkpoint is {name}, kept: its checkpoints '
                'are written as that hook writes them (not atomically by '
                'mmkd) and resume does not restore the generators',
                logger='current',
                level=logging.WARNING)

    train_cfg = cfg.get('train_cfg')
    if not isinstance(train_cfg, dict):
        return True
    if 'type' in train_cfg:
        name = _type_name(train_cfg['type']).split('.')[-1]
        if not _is_mmengine(train_cfg['type'], tuple(_LOOPS)):
            if not name.startswith('ExactResume'):
                print_log(
                    f'train_cfg type {name} kept: a resumed run repeats what '
                    "that loop repeats (MMEngine's epoch loop restarts the "
                    'interrupted epoch) and draws other random numbers than '
                    'the interrupted run',
                    logger='current',
                    level=logging.WARNING)
            return True
        train_cfg['type'] = _LOOPS[name]
    elif 'by_epoch' in train_cfg:
        by_epoch = train_cfg.pop('by_epoch')
        train_cfg['type'] = _LOOPS['EpochBasedTrainLoop' if by_epoch else
                                   'IterBasedTrainLoop']
    else:
        return True
    print_log(
        f"train_cfg: type {train_cfg['type']} (same arguments): a resumed "
        'run goes on from the batch after the checkpoint with the '
        "checkpoint's generator states",
        logger='current')
    return True
