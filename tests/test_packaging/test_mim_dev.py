"""mmkd's configs as a package in the development (editable) install:
``_base_ = ['mmkd::<method>/<config>.py']`` reads configs/ of the checkout
through mmkd/.mim, which the editable install links (setup.py)."""
import os.path as osp

from mmengine.config import Config
from mmengine.config.utils import MODULE2PACKAGE
from mmengine.utils import get_installed_path

import mmkd
from mmkd.models.utils import load_model_config

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PACKAGE = osp.dirname(osp.abspath(mmkd.__file__))
MIM = osp.join(PACKAGE, '.mim')


def test_mmengine_finds_the_imported_package():
    # listed under the registry module's name, so that MMEngine locates the
    # package through the import system, also in an editable install
    assert MODULE2PACKAGE['mmkd'] == 'mmkd.registry'
    assert get_installed_path(MODULE2PACKAGE['mmkd']) == PACKAGE


def test_the_editable_install_links_the_checkout():
    assert PACKAGE == osp.join(ROOT, 'mmkd'), \
        f'mmkd is imported from {PACKAGE}, not from this checkout'
    for item in ('configs', 'model-index.yml'):
        link = osp.join(MIM, item)
        assert osp.lexists(link), (
            f'{link} is missing: install the checkout with '
            '`pip install --no-deps -e .` (tools/setup_env.sh does), which '
            'links it')
        assert osp.islink(link), f'{link} is a copy, not a link'
        assert osp.realpath(link) == osp.realpath(osp.join(ROOT, item))


def test_mmkd_base_resolves_to_the_checkout_config(tmp_path):
    user = tmp_path / 'my_cub.py'
    user.write_text("_base_ = ['mmkd::frskd/resnet18_cub.py']\n"
                    'train_dataloader = dict(batch_size=4)\n')
    path, scope = Config._get_cfg_path('mmkd::frskd/resnet18_cub.py',
                                       str(user))
    assert scope == 'mmkd'
    assert osp.realpath(path) == osp.join(ROOT, 'configs', 'frskd',
                                          'resnet18_cub.py')
    cfg = Config.fromfile(str(user))
    ref = Config.fromfile(osp.join(ROOT, 'configs/frskd/resnet18_cub.py'))
    assert cfg.model == ref.model and cfg.model.type == 'Distiller'
    assert cfg.train_dataloader.batch_size == 4
    assert ref.train_dataloader.batch_size != 4
    assert cfg.train_dataloader.dataset == ref.train_dataloader.dataset


def test_mmkd_teacher_config_loads():
    """A teacher given as ``config='mmkd::...'`` (MMEngine's get_config: a
    metafile entry, or a plain path under configs/)."""
    listed = load_model_config('mmkd::frskd/resnet18_cub.py')
    assert listed.model.type == 'Distiller'
    teacher = load_model_config(
        'mmkd::vanilla/cifar100/resnet56_1xb128-240e_cifar100.py')
    ref = Config.fromfile(
        osp.join(
            ROOT, 'configs/vanilla/cifar100/'
            'resnet56_1xb128-240e_cifar100.py'))
    assert teacher.model == ref.model
