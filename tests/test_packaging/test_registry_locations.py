"""mmkd's registries name modules that exist, so that building a dataset,
transform or metric with ``default_scope='mmkd'`` (MMEngine imports a
registry's locations on its first use, and again until they all import)
finds the task libraries' ones."""
import importlib

from mmengine.registry import Registry, init_default_scope

import mmkd.registry
from mmkd.registry import DATA_SAMPLERS, DATASETS, METRICS, TRANSFORMS
from mmkd.testing import make_fashion_mnist


def test_every_location_imports():
    registries = [
        v for v in vars(mmkd.registry).values() if isinstance(v, Registry)
        and v.scope == 'mmkd'
    ]
    assert len(registries) >= 11
    for registry in registries:
        assert registry._locations, registry.name
        for loc in registry._locations:
            importlib.import_module(loc)  # raises if it does not exist


def test_data_side_builds_in_the_mmkd_scope(tmp_path):
    init_default_scope('mmkd')
    info = make_fashion_mnist(str(tmp_path), n_train=4, n_test=2)
    ds = DATASETS.build(
        dict(
            type='mmpretrain.FashionMNIST',
            data_root=info['data_root'],
            split='test',
            test_mode=True,
            download=False,
            pipeline=[]))
    assert len(ds) == 2
    assert type(TRANSFORMS.build(
        dict(type='mmpretrain.PackInputs'))).__name__ == 'PackInputs'
    assert type(METRICS.build(
        dict(type='mmpretrain.Accuracy'))).__name__ == 'Accuracy'
    sampler = DATA_SAMPLERS.build(
        dict(type='DefaultSampler', dataset=ds, shuffle=False))
    assert list(iter(sampler)) == [0, 1]
    for registry in (DATASETS, TRANSFORMS, METRICS, DATA_SAMPLERS):
        assert registry._imported  # its locations were imported
