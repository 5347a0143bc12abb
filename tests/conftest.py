import importlib.util
import os.path as osp
import sys
import warnings
from types import ModuleType
from typing import Callable

import pytest

from mmkd.utils import filter_known_warnings

filter_known_warnings()
warnings.filterwarnings('ignore', category=UserWarning, module='mmcv')


@pytest.fixture(autouse=True)
def _mmpretrain_scope():
    """Tests build task models like a runner of their library would."""
    from mmengine.registry import DefaultScope
    yield
    DefaultScope._instance_dict.clear()


TOOLS = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'tools')
# the modules the scripts share (paired_stats, training_logs) import by name
# in tests, as in the scripts
sys.path.insert(0, osp.join(TOOLS, 'analysis_tools'))


def _import_tool(path: str) -> ModuleType:
    """Import a script of ``tools/`` by its path under ``tools/``, its
    folder first on ``sys.path`` meanwhile (as when it runs)."""
    file = osp.join(TOOLS, path)
    if not osp.isfile(file):
        raise FileNotFoundError(f'no script tools/{path}')
    spec = importlib.util.spec_from_file_location(
        osp.splitext(osp.basename(path))[0], file)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, osp.dirname(file))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(osp.dirname(file))
    return module


@pytest.fixture(scope='session')
def load_tool() -> Callable[[str], ModuleType]:
    """``load_tool('experiments/collect_paired_protocol.py')``: the script
    imported by its path under ``tools/`` (the scripts are not a package),
    once a session."""
    loaded = {}

    def load(path: str) -> ModuleType:
        if path not in loaded:
            loaded[path] = _import_tool(path)
        return loaded[path]

    return load
