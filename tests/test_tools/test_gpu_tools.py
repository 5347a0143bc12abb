"""tools/gpu (the offline CUDA set-up and check) and tools/benchmark.py
--amp-check, on a machine without CUDA: the set-up refuses with what to run
instead, its install works from a local wheel folder with no index, and the
bf16 check reports this CPU and a recommendation that follows its ratio."""
import json
import os
import os.path as osp
import subprocess
import sys
import zipfile

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
no_cuda = pytest.mark.skipif(torch.cuda.is_available(),
                             reason='checks the machine without CUDA')


def fake_wheel(folder, name='mmkd_probe_pkg', version='0.1'):
    """A minimal pure-Python wheel: ``import mmkd_probe_pkg`` gives 42."""
    path = osp.join(folder, f'{name}-{version}-py3-none-any.whl')
    info = f'{name}-{version}.dist-info'
    files = {
        f'{name}/__init__.py': 'VALUE = 42\n',
        f'{info}/METADATA':
        f'Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n',
        f'{info}/WHEEL': 'Wheel-Version: 1.0\nGenerator: test\n'
        'Root-Is-Purelib: true\nTag: py3-none-any\n',
    }
    files[f'{info}/RECORD'] = ''.join(f'{k},,\n' for k in files) + \
        f'{info}/RECORD,,\n'
    with zipfile.ZipFile(path, 'w') as z:
        for k, v in files.items():
            z.writestr(k, v)
    return path


def setup_offline(wheelhouse, site, **env):
    """Run tools/gpu/setup_offline.sh with this interpreter."""
    return subprocess.run(
        ['bash', 'tools/gpu/setup_offline.sh', str(wheelhouse)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHON=sys.executable, MMKD_GPU_SITE=str(site),
                 PIP_NO_INDEX='1', **env))


@no_cuda
def test_check_gpu_stops_at_the_setup_refusal(tmp_path):
    """Without CUDA the set-up refuses (exit 2, saying what to run
    instead, nothing installed) and the check stops there."""
    fake_wheel(str(tmp_path))
    out = tmp_path / 'out'
    proc = subprocess.run(
        ['bash', 'tools/gpu/check_gpu.sh', str(tmp_path)], cwd=ROOT,
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHON=sys.executable, OUT=str(out),
                 MMKD_GPU_SITE=str(tmp_path / 'site')))
    assert proc.returncode == 2
    log = (out / 'check_gpu.log').read_text()
    assert 'CUDA is required' in log and 'nothing else runs' in log
    assert 'tools/setup_env.sh' in log  # what to run instead
    assert not (tmp_path / 'site').exists()  # nothing installed
    records = [json.loads(line) for line in open(out / 'check_gpu.jsonl')]
    assert [(r['part'], r['rc']) for r in records] == [('setup', 2)]


def test_setup_offline_installs_without_index(tmp_path):
    """The dry run (MMKD_SETUP_WITHOUT_CUDA=1) installs the folder's wheels
    into the site folder, leaves the interpreter's packages alone, and
    imports mmkd from this working tree with them on PYTHONPATH."""
    fake_wheel(str(tmp_path))
    site = tmp_path / 'site'
    proc = setup_offline(tmp_path, site, MMKD_SETUP_WITHOUT_CUDA='1',
                         http_proxy='http://127.0.0.1:9',
                         https_proxy='http://127.0.0.1:9')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (site / 'mmkd_probe_pkg' / '__init__.py').is_file()
    env_sh = (site / 'env.sh').read_text()
    assert f'{ROOT}:{site}' in env_sh
    assert f'({ROOT}/mmkd/__init__.py)' in proc.stderr
    probe = subprocess.run(
        ['bash', '-c', f'source {site}/env.sh && {sys.executable} -c '
         '"import mmkd_probe_pkg; print(mmkd_probe_pkg.VALUE)"'],
        capture_output=True, text=True, timeout=60)
    assert probe.stdout.strip() == '42'
    with pytest.raises(ImportError):
        import mmkd_probe_pkg  # noqa: F401  (not in this interpreter)


def test_amp_check_reports_cpu_and_follows_its_ratio(tmp_path):
    out = tmp_path / 'amp.jsonl'
    proc = subprocess.run(
        [sys.executable, 'tools/benchmark.py', '--amp-check', '--threads',
         '1', '--batch-size', '2', '--iters', '1', '--out', str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads(out.read_text())
    ms = record['ms_per_iter']
    r = ms['bfloat16'] / ms['float32']
    assert record['bf16_over_fp32'] == pytest.approx(r)
    expected = ('use --amp' if r < 0.9 else
                'keep float32:' if r > 1.1 else 'no clear gain')
    assert record['advice'].startswith(expected)
    assert proc.stdout.strip().endswith(record['advice'])
    if osp.isfile('/proc/cpuinfo'):
        cpuinfo = open('/proc/cpuinfo').read()
        name = next(line.split(':', 1)[1].strip()
                    for line in cpuinfo.splitlines()
                    if line.startswith('model name'))
        assert record['model_name'] == name
        assert record['avx512_bf16'] == (' avx512_bf16' in cpuinfo)
        assert record['amx_bf16'] == (' amx_bf16' in cpuinfo)
    assert record['onednn'].startswith('v')
