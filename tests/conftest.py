import warnings

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
