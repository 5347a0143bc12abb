"""mmkd's registries: children of MMEngine's root registries.

Every module mmkd registers lives in scope ``mmkd``. Because the registries are
children of MMEngine's root ones, a config with ``default_scope='mmkd'`` (or a
``_scope_='mmkd'`` model dict) builds without manual imports, and a student
from another scope (``mmpretrain``, ``mmdet``, ``mmseg``) is still found
through its scope prefix or its own ``_scope_``.

mmkd adds no dataset, data sampler, transform or metric of its own (configs
use the task libraries' ones, e.g. ``'mmpretrain.CUB'`` or the task config's
default scope). Those registries exist so that a ``default_scope='mmkd'``
config still finds them through MMEngine's; their location is the package
itself, which registers everything mmkd has when imported.

Importing this module also lets MMEngine read mmkd's configs as a package,
``_base_ = ['mmkd::frskd/resnet18_cub.py']`` (the configs ship in
``mmkd/.mim/configs``, see setup.py).
"""
from mmengine.config.utils import MODULE2PACKAGE
from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import \
    OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import Registry

MODELS = Registry(
    'model', parent=MMENGINE_MODELS, locations=['mmkd.models'])
MODEL_WRAPPERS = Registry(
    'model_wrapper', parent=MMENGINE_MODEL_WRAPPERS, locations=['mmkd.models'])
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, locations=['mmkd.engine'])
LOOPS = Registry('loop', parent=MMENGINE_LOOPS, locations=['mmkd.engine'])
OPTIM_WRAPPERS = Registry(
    'optim_wrapper', parent=MMENGINE_OPTIM_WRAPPERS, locations=['mmkd.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor',
    parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
    locations=['mmkd.engine'])
PARAM_SCHEDULERS = Registry(
    'parameter scheduler',
    parent=MMENGINE_PARAM_SCHEDULERS,
    locations=['mmkd.engine'])
DATASETS = Registry(
    'dataset', parent=MMENGINE_DATASETS, locations=['mmkd'])
DATA_SAMPLERS = Registry(
    'data sampler', parent=MMENGINE_DATA_SAMPLERS, locations=['mmkd'])
TRANSFORMS = Registry(
    'transform', parent=MMENGINE_TRANSFORMS, locations=['mmkd'])
METRICS = Registry(
    'metric', parent=MMENGINE_METRICS, locations=['mmkd'])

# MMEngine reads 'package::path' configs only of the packages listed in
# MODULE2PACKAGE, from '<package dir>/.mim'. mmkd is listed under the name of
# this module, not of its distribution: MMEngine then finds the package
# directory through the import system (this file's folder), which is right
# for an installed wheel and for an editable install alike (the metadata of
# an editable install lies in site-packages, away from the package).
MODULE2PACKAGE.setdefault('mmkd', __name__)
