import subprocess
import sys

import pytest

import mmkd


def run_python(code: str) -> str:
    return subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, check=True).stdout


@pytest.mark.parametrize('how', ['default_scope', '_scope_'])
def test_mmkd_modules_build_without_manual_import(how):
    # mmkd is never imported by the code below: the registry's scope and
    # `locations` import it on demand.
    build = ("MODELS.build(dict(type='KDLoss', tau=2.0))" if how ==
             'default_scope' else
             "MODELS.build(dict(type='KDLoss', tau=2.0, _scope_='mmkd'))")
    init = ("init_default_scope('mmkd')" if how == 'default_scope' else
            "init_default_scope('mmpretrain')")
    out = run_python(
        'import sys\n'
        'from mmengine.registry import MODELS, init_default_scope\n'
        f'{init}\n'
        f'loss = {build}\n'
        "print(type(loss).__module__, loss.tau, 'mmkd' in sys.modules)\n")
    assert out.split() == ['mmkd.models.losses.kd_loss', '2.0', 'True']


def test_unsupported_versions_fail_with_the_range():
    with pytest.raises(ImportError, match=r'mmkd .* supports mmcv>=2.0.0,'
                       r'<2.2.0, but mmcv==2.2.0 is installed'):
        mmkd._check_version('mmcv', '2.2.0', mmkd.MMCV_MIN, mmkd.MMCV_MAX)
    with pytest.raises(ImportError, match='mmengine>=0.10.3,<1.0.0'):
        mmkd._check_version('mmengine', '0.9.0', mmkd.MMENGINE_MIN,
                            mmkd.MMENGINE_MAX)
    mmkd._check_version('mmcv', '2.1.0', mmkd.MMCV_MIN, mmkd.MMCV_MAX)
