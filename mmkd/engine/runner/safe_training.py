"""Switch a config to mmkd's crash-safe checkpoints and exact-resume loops."""
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


def enable_safe_checkpoints(cfg: Config) -> None:
    """Use ``mmkd.SafeCheckpointHook`` and mmkd's exact-resume loops.

    ``default_hooks.checkpoint`` of type ``CheckpointHook`` (or none given:
    MMEngine's default ``CheckpointHook(interval=1)``) becomes
    ``mmkd.SafeCheckpointHook`` with the same arguments; ``train_cfg`` of
    ``EpochBasedTrainLoop``/``IterBasedTrainLoop`` (or ``by_epoch=True/
    False``) becomes ``mmkd.ExactResumeEpochBasedTrainLoop``/
    ``mmkd.ExactResumeIterBasedTrainLoop``, same arguments. Other types
    (a user's own hook or loop: the log says so) and a disabled checkpoint
    hook (``checkpoint=None``) are kept. Edits ``cfg`` in place. See docs/en/reliability.md.
    """
    hooks = cfg.get('default_hooks')
    if hooks is None:
        cfg.default_hooks = hooks = dict()
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
        elif name != 'SafeCheckpointHook' and not name.endswith(
                '.SafeCheckpointHook'):
            print_log(
                f'default_hooks.checkpoint is {name}, kept: its checkpoints '
                'are written as that hook writes them (not atomically by '
                'mmkd) and resume does not restore the generators',
                logger='current',
                level='WARNING')

    train_cfg = cfg.get('train_cfg')
    if not isinstance(train_cfg, dict):
        return
    if 'type' in train_cfg:
        name = _type_name(train_cfg['type']).split('.')[-1]
        if _is_mmengine(train_cfg['type'], tuple(_LOOPS)):
            train_cfg['type'] = _LOOPS[name]
        elif not name.startswith('ExactResume'):
            print_log(
                f'train_cfg type {name} kept: a resumed run repeats what '
                'that loop repeats (MMEngine\'s epoch loop restarts the '
                'interrupted epoch) and draws other random numbers than '
                'the interrupted run',
                logger='current',
                level='WARNING')
            return
    elif 'by_epoch' in train_cfg:
        by_epoch = train_cfg.pop('by_epoch')
        train_cfg['type'] = _LOOPS['EpochBasedTrainLoop' if by_epoch else
                                   'IterBasedTrainLoop']
    else:
        return
    print_log(
        f"train_cfg: type {train_cfg['type']} (same arguments): a resumed "
        'run goes on from the batch after the checkpoint with the '
        "checkpoint's generator states",
        logger='current')
