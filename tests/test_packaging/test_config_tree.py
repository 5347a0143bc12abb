"""The config tree: every config lives under configs/ (distillers in their
method's folder, undistilled models in configs/vanilla/), loads, names
existing teacher configs, and the cheap ones build; nothing refers to the
layouts before the moves (model_zoo/config_moves.json)."""
import copy
import functools
import glob
import os.path as osp
import re
import subprocess

import mmengine.config.utils
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmkd  # noqa: F401  (registers mmkd's modules and 'mmkd::' configs)
from mmkd.models.utils import build_task_model, load_model_config
from mmkd.registry import MODELS

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
ALL = sorted(
    glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True))
# pieces that only other configs inherit (no model of their own)
PIECES = [p for p in ALL if '_base_' in osp.relpath(p, ROOT).split(osp.sep)]
FULL = [p for p in ALL if p not in PIECES]
# the real-data runs made on CPUs (small models: each builds in seconds)
REAL_DATA = [
    p for p in FULL
    if re.search(r'_(fashion-mnist|deepforest|stardist)', osp.basename(p))
]
# the classic-method configs no method test builds: ImageNet ResNet-34 ->
# ResNet-18 (the detection/segmentation ones have R-101 teachers)
CLASSIC_IN1K = sorted(
    glob.glob(osp.join(ROOT, 'configs', '*', '*_resnet34-resnet18_*.py')))
# the folders of the layouts before (model_zoo/config_moves.json)
OLD_PATHS = ('configs/reviewkd/experiments', 'configs/skd/stardist',
             'experiments/frskd/', 'experiments/reviewkd/', 'experiments/skd/',
             'experiments/README', 'reviewkd/baselines', 'frskd/baselines',
             'reviewkd/_base_/cifar')


def rel(path):
    return osp.relpath(path, ROOT)


@pytest.fixture(scope='module', autouse=True)
def read_each_metafile_once():
    """MMEngine parses every metafile of a task library for each
    'mmpretrain::' (etc.) base it resolves (~0.5 s each); the same files are
    read unchanged here, so each is parsed once for this module."""
    real_load = mmengine.config.utils.load
    cached = functools.lru_cache(maxsize=None)(real_load)

    def load(file, *args, **kwargs):
        if isinstance(file, str) and file.endswith(('.yml', '.yaml')) and \
                not args and not kwargs:
            return cached(file)
        return real_load(file, *args, **kwargs)

    mp = pytest.MonkeyPatch()
    mp.setattr(mmengine.config.utils, 'load', load)
    yield
    mp.undo()


@functools.lru_cache(maxsize=None)
def _parsed(path):
    return Config.fromfile(path)


def load(path):
    """A config file, parsed once for this module (callers get a copy)."""
    return copy.deepcopy(_parsed(path))


@functools.lru_cache(maxsize=None)
def inherited():
    """Every local file some config of the tree names in its _base_."""
    bases = set()
    for path in ALL:
        for base in Config._get_base_files(path):
            if '::' not in base:
                bases.add(osp.normpath(osp.join(osp.dirname(path), base)))
    return bases


def test_the_tree_is_where_the_layout_says():
    assert len(FULL) > 90 and len(REAL_DATA) >= 25
    assert not glob.glob(
        osp.join(ROOT, 'experiments', '**', '*.py'), recursive=True)
    assert osp.isfile(osp.join(ROOT, 'configs', 'vanilla', 'README.md'))
    for method in ('frskd', 'reviewkd', 'skd', 'kd'):
        folder = osp.join('configs', method) + osp.sep
        assert [p for p in REAL_DATA if rel(p).startswith(folder)], method


@pytest.mark.parametrize('path', FULL, ids=rel)
def test_distillers_and_vanilla_models_are_in_their_homes(path):
    """A config under configs/vanilla/ trains a plain task model; every other
    config (outside _base_/) a distiller of its method."""
    model = load(path).get('model')
    if model is None:  # a data/schedule piece (checked below)
        return
    vanilla = rel(path).startswith(osp.join('configs', 'vanilla') + osp.sep)
    distiller = 'student' in model
    home = 'configs/<method>/' if distiller else 'configs/vanilla/'
    assert vanilla != distiller, f'{rel(path)}: its model belongs in {home}'


@pytest.mark.parametrize('path', FULL, ids=rel)
def test_config_loads_and_names_existing_files(path):
    cfg = load(path)
    if 'model' not in cfg:  # a data/schedule piece of other configs
        assert path in inherited(), \
            f'{rel(path)} defines no model and no config inherits it'
        return
    teacher = cfg.model.get('teacher')
    if isinstance(teacher, dict) and teacher.get('config'):
        if '::' in teacher.config:
            target, _ = Config._get_cfg_path(teacher.config, path)
        else:  # absolute ({{fileDirname}}) or beside the config
            target = osp.join(osp.dirname(path), teacher.config)
        assert osp.isfile(target), \
            f'{rel(path)}: teacher config {teacher.config} does not exist'


@pytest.mark.parametrize('path', PIECES, ids=rel)
def test_base_piece_loads(path):
    cfg = load(path)
    assert len(cfg.keys()) > 0


def _random_teacher(cfg, tmp_path):
    """Point the teacher at a checkpoint of random weights of its config."""
    teacher = cfg.model.get('teacher')
    if not teacher:
        return
    tcfg = load_model_config(teacher.config)
    model = dict(tcfg.model, _scope_=tcfg.get('default_scope'))
    ckpt = str(tmp_path / 'teacher.pth')
    torch.save({'state_dict': build_task_model(model).state_dict()}, ckpt)
    teacher.checkpoint = ckpt


@pytest.mark.parametrize('path', REAL_DATA + CLASSIC_IN1K, ids=rel)
def test_config_builds(path, tmp_path):
    cfg = load(path)
    if 'model' not in cfg:  # a piece: checked by the test above
        assert path in inherited()
        return
    init_default_scope(cfg.get('default_scope') or 'mmkd')
    _random_teacher(cfg, tmp_path)
    model_cfg = copy.deepcopy(cfg.model)
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    if 'student' not in model_cfg:  # a task model (teacher, baseline)
        model = build_task_model(model_cfg)
        assert type(model).__name__ == model_cfg['type'].split('.')[-1]
        return
    model = MODELS.build(model_cfg)
    assert type(model).__name__ == model_cfg['type'].split('.')[-1]
    assert set(model.distill_losses) == set(model_cfg.get('losses') or {})
    assert set(model.connectors) == set(model_cfg.get('connectors') or {})
    if model_cfg.get('teacher'):
        params = list(model.teacher.parameters())
        assert params and not any(p.requires_grad for p in params)
        assert not any(k.startswith('teacher.') for k in model.state_dict())


def test_nothing_refers_to_the_old_layout():
    files = subprocess.run(['git', 'ls-files'],
                           cwd=ROOT,
                           capture_output=True,
                           text=True,
                           check=True).stdout.split()
    # logs are records of past runs: they keep the paths they ran with
    texts = [
        f for f in files if f.endswith(('.py', '.sh', '.md', '.yml', '.txt',
                                        '.jsonl', '.cfg', '.in', '.json'))
    ]
    assert len(texts) > 100
    bad = []
    for f in texts:
        with open(osp.join(ROOT, f), encoding='utf-8', errors='replace') as fh:
            text = fh.read()
        bad += [f'{f}: {old}' for old in OLD_PATHS if old in text]
    # this file names the old paths to look for them, the table of moves
    # maps them to the new ones, test_released_logs reads them through it
    bad = [
        b for b in bad
        if not b.startswith(('tests/test_packaging/',
                             'tests/test_tools/test_released_logs.py',
                             'model_zoo/config_moves.json'))
    ]
    assert not bad, bad
