"""Let ``torch.load(weights_only=True)`` read MMEngine's own checkpoints.

torch >= 2.6 loads with ``weights_only=True`` by default. An MMEngine
checkpoint also holds the message hub (``HistoryBuffer`` objects), numpy
scalars and arrays in ``message_hub``/``meta``, so ``Runner(resume=True)``
fails with ``Unsupported global: ...HistoryBuffer``. Rather than switching
the safety off for every file, this allow-lists exactly the globals MMEngine
writes.
"""
import numpy as np
import torch


def _numpy_globals() -> list:
    # numpy 2 moved numpy.core to numpy._core; pickles name either.
    import importlib
    found = [np.ndarray, np.dtype]
    for mod_name in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        try:
            mod = importlib.import_module(mod_name)
        except ImportError:
            continue
        found += [getattr(mod, n) for n in ('_reconstruct', 'scalar')
                  if hasattr(mod, n)]
    # dtype classes (numpy.dtypes.Float64DType, ...) used when pickling dtypes
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        found += [
            getattr(dtypes, n) for n in dir(dtypes) if n.endswith('DType')
        ]
    return found


def _history_buffer_getattr(obj, name: str):
    """``getattr`` restricted to what a pickled ``HistoryBuffer`` needs.

    ``HistoryBuffer._statistics_methods`` holds its statistics functions
    (``min``, ``max``, ``mean``, ...), which pickle stores as
    ``getattr(HistoryBuffer, 'min')``. Allowing the real ``getattr`` would let
    a crafted file reach any attribute (and so ``eval``); this one only
    resolves those statistics methods.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    allowed = {'min', 'max', 'mean', 'current'}
    allowed.update(HistoryBuffer._statistics_methods)
    if obj is HistoryBuffer and name in allowed:
        return getattr(obj, name)
    raise AttributeError(
        f'weights_only loading of an MMEngine checkpoint refuses '
        f'getattr({obj!r}, {name!r}): only HistoryBuffer statistics methods '
        'are allowed')


def allow_mmengine_checkpoint_globals() -> None:
    """Allow-list the globals of MMEngine checkpoints for ``torch.load``."""
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is None:  # torch < 2.4 loads without weights_only by default
        return
    from mmengine.logging.history_buffer import HistoryBuffer
    safe = [HistoryBuffer] + _numpy_globals()
    # The numpy functions are pickled under their module path; register
    # them under both the old and the new numpy module names.
    entries = []
    for obj in safe:
        entries.append(obj)
        module = getattr(obj, '__module__', '')
        name = getattr(obj, '__name__', None)
        if name and module.startswith('numpy._core'):
            old = module.replace('numpy._core', 'numpy.core')
            entries.append((obj, f'{old}.{name}'))
    entries.append((_history_buffer_getattr, 'builtins.getattr'))
    add(entries)


class UnsafeCheckpointError(ValueError):
    """A checkpoint holds objects that ``weights_only`` loading refuses."""


def load_checkpoint_safely(path: str, map_location='cpu'):
    """``torch.load(path, weights_only=True)`` with MMEngine's globals
    allowed (:func:`allow_mmengine_checkpoint_globals`): tensors, containers,
    numbers, strings, numpy arrays and scalars, message-hub buffers. A file
    whose pickle asks for anything else (a function call, an arbitrary
    class) is refused before that code runs.

    Args:
        path (str): The checkpoint file.
        map_location: As for ``torch.load``. Defaults to ``'cpu'``.

    Returns:
        The loaded object.

    Raises:
        UnsafeCheckpointError: If the file holds something outside the
            allow-list.
    """
    import pickle
    import re
    allow_mmengine_checkpoint_globals()
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        found = re.search(r'Unsupported global: GLOBAL (\S+)', text) or \
            re.search(r'(Unsupported operand \S+)', text)
        what = (f'it asks for `{found.group(1)}`'
                if found else text.strip().splitlines()[-1])
        raise UnsafeCheckpointError(
            f'refusing to load {path}: {what}, which MMEngine checkpoints '
            'never contain (weights_only loading allows tensors, containers, '
            'numbers, strings, numpy arrays and MMEngine message-hub '
            'buffers). Loading it fully could run arbitrary code; nothing '
            'was loaded or written. If the file is your own and you trust '
            'it, re-save its state_dict with plain torch.save.') from None
