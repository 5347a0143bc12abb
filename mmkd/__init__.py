"""mmkd: knowledge distillation for OpenMMLab 2.x."""
import mmcv
import mmengine
from mmengine.utils import digit_version

from .version import __version__

MMCV_MIN, MMCV_MAX = '2.0.0', '2.2.0'
MMENGINE_MIN, MMENGINE_MAX = '0.10.3', '1.0.0'


def _check_version(name: str, version: str, low: str, high: str) -> None:
    if not digit_version(low) <= digit_version(version) < digit_version(high):
        raise ImportError(
            f'mmkd {__version__} supports {name}>={low},<{high}, but '
            f'{name}=={version} is installed. Install a supported version, '
            f'e.g. `pip install "{name}>={low},<{high}"` (or run '
            f'tools/setup_env.sh).')


_check_version('mmcv', mmcv.__version__, MMCV_MIN, MMCV_MAX)
_check_version('mmengine', mmengine.__version__, MMENGINE_MIN, MMENGINE_MAX)

from . import engine, models  # noqa: E402,F401  (registers all modules)
from .utils import allow_mmengine_checkpoint_globals  # noqa: E402

# Importing mmkd (e.g. through custom_imports) lets Runner(resume=True) load
# MMEngine checkpoints under torch>=2.6's weights_only default.
allow_mmengine_checkpoint_globals()

__all__ = ['__version__']
