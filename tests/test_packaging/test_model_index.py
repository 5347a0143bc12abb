"""model-index.yml (OpenMMLab's model index) and the metafiles it imports:
every metafile is listed, parses, names its collection, and every config path
in it exists."""
import glob
import os.path as osp

import pytest
import yaml

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
INDEX = yaml.safe_load(open(osp.join(ROOT, 'model-index.yml')))
METAFILES = INDEX['Import']
# Metadata values that name a config: the first word, e.g.
# 'configs/vanilla/stardist/pspnet_r34-....py (trained here, ...)'.
CONFIG_KEYS = ('Teacher', 'Student', 'Baseline')


def _load(metafile):
    with open(osp.join(ROOT, metafile)) as f:
        return yaml.safe_load(f)


def test_index_imports_every_metafile_once():
    on_disk = sorted(
        osp.relpath(p, ROOT)
        for p in glob.glob(osp.join(ROOT, 'configs', '*', 'metafile.yml')))
    assert len(METAFILES) == len(set(METAFILES))
    assert sorted(METAFILES) == on_disk
    assert {'configs/kd/metafile.yml', 'configs/at/metafile.yml',
            'configs/fitnets/metafile.yml'} <= set(METAFILES)


def test_config_names_are_unique_for_mmengine():
    """MMEngine's get_config('mmkd::<method>/<file>') looks a config up by
    its Config path without the first folder (configs/)."""
    keys = {}
    for f in METAFILES:
        for m in _load(f)['Models']:
            key = m['Config'].partition('/')[-1]
            assert keys.setdefault(key, m['Config']) == m['Config'], key


@pytest.mark.parametrize('metafile', METAFILES)
def test_metafile_parses_and_its_paths_exist(metafile):
    assert osp.isfile(osp.join(ROOT, metafile)), f'{metafile} is missing'
    meta = _load(metafile)
    collections = {c['Name']: c for c in meta['Collections']}
    for c in collections.values():
        assert osp.isfile(osp.join(ROOT, c['README'])), c['README']
        assert c['Paper']['URL'].startswith('https://')
    assert meta['Models'], f'{metafile} lists no model'
    for model in meta['Models']:
        name = model['Name']
        assert model['In Collection'] in collections, name
        assert osp.isfile(osp.join(ROOT, model['Config'])), \
            f'{metafile}: {name}: Config {model["Config"]} is missing'
        for key in CONFIG_KEYS:
            value = (model.get('Metadata') or {}).get(key, '')
            first = value.split()[0] if value else ''
            if first.endswith('.py'):
                assert osp.isfile(osp.join(ROOT, first)), \
                    f'{metafile}: {name}: {key} {first} is missing'
        # OpenMMLab's format: null (or absent) where not trained, else a
        # list of task / dataset / metrics entries
        results = model.get('Results')
        assert results is None or all(
            r['Task'] and r['Dataset'] and r['Metrics'] for r in results), name


def test_model_names_are_unique_across_the_index():
    names = [m['Name'] for f in METAFILES for m in _load(f)['Models']]
    assert len(names) == len(set(names)), sorted(
        n for n in set(names) if names.count(n) > 1)


def test_every_method_config_is_in_its_metafile():
    """Each config directly under configs/<method>/ (not _base_/ pieces or
    the undistilled models of configs/vanilla/<dataset>/) has an entry in the
    index."""
    listed = {m['Config'] for f in METAFILES for m in _load(f)['Models']}
    configs = sorted(
        osp.relpath(p, ROOT)
        for p in glob.glob(osp.join(ROOT, 'configs', '*', '*.py')))
    assert configs
    missing = [c for c in configs if c not in listed]
    assert not missing, f'configs without a metafile entry: {missing}'
