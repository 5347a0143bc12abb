"""The wheel: built from a copy of the checkout, installed (no dependencies)
into a fresh virtual environment that sees the project's packages, it leaves
torch and mmcv as they are, ships the configs in mmkd/.mim, and serves
``mmkd::`` configs, whose models build from the installed package."""
import glob
import json
import os
import os.path as osp
import shutil
import site
import subprocess
import sys
import textwrap
import zipfile

import mmcv
import mmengine
import pytest
import torch
from packaging.requirements import Requirement

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SOURCES = ('setup.py', 'setup.cfg', 'MANIFEST.in', 'README.md',
           'model-index.yml', 'requirements', 'mmkd', 'configs')

CHECK = textwrap.dedent('''
    import json, os.path as osp, sys
    from importlib.metadata import requires, version
    from packaging.requirements import Requirement
    import mmcv, mmengine, torch
    import mmkd
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmkd.registry import MODELS

    unmet = []
    for line in requires('mmkd'):
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate({'extra': ''}):
            continue  # an extra (tests)
        if not req.specifier.contains(version(req.name), prereleases=True):
            unmet.append(f'{req} (installed {version(req.name)})')
    cub, cifar = sys.argv[1:3]
    base, _ = Config._get_cfg_path('mmkd::frskd/resnet18_cub.py', cub)
    cfg = Config.fromfile(cub)
    model_cfg = Config.fromfile(cifar).model
    init_default_scope('mmpretrain')
    model = MODELS.build(dict(model_cfg, probe_input_shape=(3, 32, 32)))
    print(json.dumps(dict(
        mmkd=mmkd.__file__, torch=torch.__version__, mmcv=mmcv.__version__,
        mmengine=mmengine.__version__, unmet=unmet, base=base,
        cub_model=cfg.model.type, batch_size=cfg.train_dataloader.batch_size,
        built=type(model).__name__,
        built_from=sys.modules[type(model.connectors['self_teacher'])
                               .__module__].__file__)))
''')


def _copy_sources(dst):
    ignore = shutil.ignore_patterns('.mim', '__pycache__', '*.pyc')
    for item in SOURCES:
        src = osp.join(ROOT, item)
        if osp.isdir(src):
            shutil.copytree(src, osp.join(dst, item), ignore=ignore)
        else:
            shutil.copy(src, dst)


def _run(cmd, **kwargs):
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, (f'{cmd} failed:\n{result.stdout}\n'
                                    f'{result.stderr}')
    return result.stdout


@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
    src = tmp_path_factory.mktemp('src')
    dist = tmp_path_factory.mktemp('dist')
    _copy_sources(str(src))
    _run([
        sys.executable, '-m', 'pip', 'wheel', '--no-deps',
        '--no-build-isolation', '-q', '-w',
        str(dist),
        str(src)
    ])
    wheels = glob.glob(str(dist / 'mmkd-*.whl'))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_ships_the_configs_as_files_and_keeps_the_ranges(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for rel in ('configs/frskd/resnet18_cub.py',
                    'configs/reviewkd/_base_/reviewkd_cifar.py',
                    'configs/vanilla/stardist/pspnet_r18-d8_1xb8-450iter_'
                    'stardist-64x64.py', 'model-index.yml'):
            name = f'mmkd/.mim/{rel}'
            assert name in names, f'{name} is not in the wheel'
            with open(osp.join(ROOT, rel), 'rb') as f:
                assert z.read(name) == f.read()
            mode = z.getinfo(name).external_attr >> 16
            assert mode & 0o170000 != 0o120000, f'{name} is a symlink'
        # every config lives under configs/ (no other config folder)
        top = {n.split('/')[2] for n in names if n.startswith('mmkd/.mim/')}
        assert top == {'configs', 'model-index.yml'}, top
        shipped = {n for n in names if n.startswith('mmkd/.mim/configs/')}
        in_tree = {
            'mmkd/.mim/' + osp.relpath(p, ROOT)
            for p in glob.glob(
                osp.join(ROOT, 'configs', '**', '*.*'), recursive=True)
            if '__pycache__' not in p
        }
        assert shipped == in_tree
        meta = z.read(next(n for n in names if n.endswith('/METADATA')))
    requires = [
        str(Requirement(line.split(':', 1)[1].strip()))
        for line in meta.decode().splitlines()
        if line.startswith('Requires-Dist:') and 'extra ==' not in line
    ]
    with open(osp.join(ROOT, 'requirements', 'runtime.txt')) as f:
        runtime = [
            str(Requirement(line.strip())) for line in f
            if line.strip() and not line.startswith('#')
        ]
    assert requires == runtime
    assert any('<' in r for r in requires)  # upper bounds kept


def test_wheel_in_a_fresh_venv_serves_mmkd_configs(wheel, tmp_path):
    venv = tmp_path / 'venv'
    _run([
        sys.executable, '-m', 'venv', '--system-site-packages',
        '--without-pip',
        str(venv)
    ])
    python = str(venv / 'bin' / 'python')
    # A venv made from a venv's python sees the *base* interpreter's
    # site-packages; the project's packages (torch, mmcv, ...) come from
    # this environment's site-packages, added after the new venv's own.
    purelib = _run([
        python, '-c', 'import sysconfig; print(sysconfig.get_paths()'
        '["purelib"])'
    ]).strip()
    with open(osp.join(purelib, 'project_env.pth'), 'w') as f:
        f.write('\n'.join(site.getsitepackages()) + '\n')
    _run([
        sys.executable, '-m', 'pip', '--python', python, 'install',
        '--no-deps', '-q', wheel
    ])
    cub = tmp_path / 'my_cub.py'
    cub.write_text("_base_ = ['mmkd::frskd/resnet18_cub.py']\n"
                   'train_dataloader = dict(batch_size=4)\n')
    cifar = tmp_path / 'my_cifar.py'
    cifar.write_text("_base_ = ['mmkd::frskd/resnet18_cifar100.py']\n")
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONNOUSERSITE='1')
    env.pop('PYTHONPATH', None)
    out = json.loads(
        _run([python, '-c', CHECK, str(cub), str(cifar)],
             cwd=str(tmp_path),
             env=env).strip().splitlines()[-1])
    # the installed copy is used, not this checkout
    assert out['mmkd'].startswith(purelib), out['mmkd']
    assert out['base'] == osp.join(purelib, 'mmkd', '.mim', 'configs',
                                   'frskd', 'resnet18_cub.py')
    assert not osp.islink(out['base'])
    assert out['built_from'].startswith(purelib)
    # --no-deps left the stack as it is, and it satisfies the ranges
    assert (out['torch'], out['mmcv'], out['mmengine']) == (
        torch.__version__, mmcv.__version__, mmengine.__version__)
    assert out['unmet'] == []
    assert (out['cub_model'], out['batch_size']) == ('Distiller', 4)
    assert out['built'] == 'Distiller'
