"""mmkd's registries name modules that exist, so that building a dataset,
transform or metric with ``default_scope='mmkd'`` (MMEngine imports a
registry's locations on its first use) finds the task libraries' ones."""
import importlib
import subprocess
import sys

from mmengine.registry import Registry

import mmkd.registry


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
    # A fresh process: the registries import their locations on first use.
    code = f'''
from mmengine.registry import init_default_scope
from mmkd.registry import DATA_SAMPLERS, DATASETS, METRICS, TRANSFORMS
from mmkd.testing import make_fashion_mnist
init_default_scope('mmkd')
info = make_fashion_mnist({str(tmp_path)!r}, n_train=4, n_test=2)
ds = DATASETS.build(dict(type='mmpretrain.FashionMNIST',
                         data_root=info['data_root'], split='test',
                         test_mode=True, download=False, pipeline=[]))
t = TRANSFORMS.build(dict(type='mmpretrain.PackInputs'))
m = METRICS.build(dict(type='mmpretrain.Accuracy'))
s = DATA_SAMPLERS.build(dict(type='DefaultSampler', dataset=ds,
                             shuffle=False))
print(len(ds), type(t).__name__, type(m).__name__, len(list(iter(s))))
'''
    out = subprocess.run([sys.executable, '-c', code],
                         capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-4:] == ['2', 'PackInputs', 'Accuracy', '2']
