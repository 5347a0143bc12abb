import os
import os.path as osp
import shutil
import warnings

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py
from setuptools.command.develop import develop

ROOT = osp.dirname(osp.abspath(__file__))
#: What ``mmkd/.mim`` holds, OpenMMLab's layout for a package's configs:
#: MMEngine reads ``mmkd::<method>/<config>.py`` from ``.mim/configs`` and
#: the metafiles listed in ``.mim/model-index.yml``.
MIM_ITEMS = ('configs', 'model-index.yml')


def read_requirements(name):
    with open(osp.join(ROOT, 'requirements', name)) as f:
        return [
            line.strip() for line in f
            if line.strip() and not line.startswith('#')
        ]


def get_version():
    scope = {}
    with open(osp.join(ROOT, 'mmkd', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


def add_mim_extension(mim_dir, mode):
    """Put :data:`MIM_ITEMS` of the checkout into ``mim_dir``.

    Args:
        mim_dir (str): ``<package dir>/.mim`` of the build or the checkout.
        mode (str): ``'symlink'`` (relative links into the checkout, for
            editable installs: config edits are seen at once) or ``'copy'``
            (wheels; a link that cannot be made is copied too).
    """
    os.makedirs(mim_dir, exist_ok=True)
    for item in MIM_ITEMS:
        src = osp.join(ROOT, item)
        dst = osp.join(mim_dir, item)
        if not osp.exists(src):
            raise FileNotFoundError(
                f'{src} is missing: mmkd ships it in mmkd/.mim (an sdist '
                'must include it, see MANIFEST.in)')
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if mode == 'symlink':
            try:
                os.symlink(osp.relpath(src, mim_dir), dst)
                continue
            except OSError as e:  # e.g. a file system without links
                warnings.warn(f'cannot link {dst} -> {src} ({e}); copying')
        if osp.isdir(src):
            shutil.copytree(
                src, dst, ignore=shutil.ignore_patterns('__pycache__',
                                                        '*.pyc'))
        else:
            shutil.copyfile(src, dst)


class BuildPy(build_py):
    """``build_py`` that also fills ``mmkd/.mim``: a copy in the build (a
    wheel), links in the checkout for an editable install (PEP 660)."""

    def run(self):
        super().run()
        if getattr(self, 'editable_mode', False):
            add_mim_extension(osp.join(ROOT, 'mmkd', '.mim'), 'symlink')
        else:
            add_mim_extension(
                osp.join(self.build_lib, 'mmkd', '.mim'), 'copy')


class Develop(develop):
    """Legacy ``setup.py develop``: links in the checkout."""

    def run(self):
        add_mim_extension(osp.join(ROOT, 'mmkd', '.mim'), 'symlink')
        super().run()


setup(
    name='mmkd',
    version=get_version(),
    description='Knowledge distillation for OpenMMLab 2.x: FRSKD, ReviewKD, '
    'SKD and classic baselines for mmpretrain, mmdet and mmsegmentation',
    packages=find_packages(exclude=('configs', 'tools', 'tests')),
    python_requires='>=3.8',
    install_requires=read_requirements('runtime.txt'),
    extras_require=dict(tests=read_requirements('tests.txt')),
    license='Apache License 2.0',
    cmdclass=dict(build_py=BuildPy, develop=Develop),
    zip_safe=False,
)
