"""The model zoo as the metafiles list it: every path exists, every
released weight file carries the sha256 prefix of its bytes in its name and
holds a plain student (no distiller keys), and every released config is a
short file that MMEngine loads."""
import glob
import hashlib
import os.path as osp
import re

import pytest
import torch
import yaml

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
MODELS = [
    (osp.relpath(path, ROOT), model)
    for path in sorted(glob.glob(osp.join(ROOT, 'configs', '*',
                                          'metafile.yml')))
    for model in yaml.safe_load(open(path))['Models']
]
RELEASED = [(f, m) for f, m in MODELS if 'Weights' in m]


def test_the_zoo_has_released_models():
    assert len(RELEASED) >= 6


@pytest.mark.parametrize('metafile,model', MODELS,
                         ids=[m['Name'] for _, m in MODELS])
def test_paths_exist(metafile, model):
    for key in ('Config', 'Weights', 'Student Config', 'Training Log'):
        if key in model:
            assert osp.isfile(osp.join(ROOT, model[key])), \
                f'{metafile}: {model["Name"]}: {key} {model[key]} is missing'


@pytest.mark.parametrize('metafile,model', RELEASED,
                         ids=[m['Name'] for _, m in RELEASED])
def test_released_weights_hash_and_keys(metafile, model):
    path = osp.join(ROOT, model['Weights'])
    match = re.search(r'-([0-9a-f]{8})\.pth$', path)
    assert match, f'{path}: no sha256 prefix in the name'
    with open(path, 'rb') as f:
        assert hashlib.sha256(f.read()).hexdigest().startswith(
            match.group(1))
    ckpt = torch.load(path, map_location='cpu', weights_only=True)
    assert set(ckpt) <= {'meta', 'state_dict'}  # no training state
    assert not any(k.startswith(('student.', 'teacher.', 'connectors.',
                                 'critic.')) for k in ckpt['state_dict'])


RELEASED_CONFIGS = sorted(
    osp.relpath(p, ROOT)
    for p in glob.glob(osp.join(ROOT, 'model_zoo', '*', '*.py')))


@pytest.mark.parametrize('path', RELEASED_CONFIGS)
def test_released_config_is_short_and_loads(path):
    """A subset of a dataset is a ``range`` (one line), not a dumped list of
    indices: no released config is over 300 lines."""
    from mmengine.config import Config
    with open(osp.join(ROOT, path)) as f:
        lines = f.read().count('\n')
    assert lines <= 300, f'{path}: {lines} lines'
    cfg = Config.fromfile(osp.join(ROOT, path))
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        indices = loader.dataset.get('indices') if loader else None
        assert indices is None or isinstance(indices, (int, range)), \
            f'{path}: {split} indices {type(indices).__name__}'


WITH_TEST_JSON = [(f, m) for f, m in RELEASED
                  if 'Student Config' in m and osp.isfile(
                      osp.join(ROOT, m['Student Config'][:-len('.py')] +
                               '.test.json'))]


def test_released_students_have_their_test_outputs():
    assert len(WITH_TEST_JSON) >= 10


@pytest.mark.parametrize('metafile,model', WITH_TEST_JSON,
                         ids=[m['Name'] for _, m in WITH_TEST_JSON])
def test_metafile_top1_is_the_released_test_output(metafile, model):
    """``<student>.test.json`` is ``tools/test.py --out`` of the released
    config and weights on the test set; the metafile quotes that number."""
    import json
    path = osp.join(ROOT, model['Student Config'][:-len('.py')] + '.test.json')
    with open(path) as f:
        top1 = json.load(f)['accuracy/top1']
    quoted = model['Results'][0]['Metrics']['Top 1 Accuracy']
    assert round(top1, 2) == pytest.approx(quoted, abs=1e-9), \
        f'{metafile}: {model["Name"]} quotes {quoted}, test.json {top1}'
