"""The released results.json files (which the README tables are
re-tabulated from) agree with the released MMEngine text logs."""
import json
import os.path as osp

import pytest

from mmkd.utils.training_logs import load_run, series

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
ZOO = osp.join(ROOT, 'model_zoo')

CASES = [
    ('frskd/results.json', 'frskd/resnet14_{run}_fashion-mnist_{seed}.log',
     'accuracy/top1'),
    ('reviewkd/results_fashion-mnist.json',
     'reviewkd/logs/fashion-mnist_{run}_{seed}.log', 'accuracy/top1'),
    ('reviewkd/results_deepforest.json',
     'reviewkd/logs/deepforest_{run}_{seed}.log', 'coco/bbox_mAP'),
]


@pytest.mark.parametrize('results,pattern,metric', CASES)
def test_validation_history_matches_the_text_logs(results, pattern, metric):
    with open(osp.join(ZOO, results)) as f:
        collected = json.load(f)
    n = 0
    for run, res in collected.items():
        for seed, values in res['seeds'].items():
            log = osp.join(ZOO, pattern.format(run=run, seed=seed))
            history = list(series(load_run(log), metric, 'val').values())
            # the text log prints 4 decimals
            assert history == pytest.approx(values['history'], abs=5e-5)
            assert values['final'] == pytest.approx(history[-1], abs=5e-5)
            n += 1
    assert n >= 6  # 3 seeds of at least two arms


def test_skd_nuclei_miou_matches_the_text_logs():
    with open(osp.join(ZOO, 'skd/results.json')) as f:
        collected = json.load(f)
    for variant, runs in collected['students'].items():
        assert len(runs) == 3
        for seed, values in runs.items():
            records = load_run(
                osp.join(ZOO, f'skd/nuclei_logs/{variant}_{seed}.log'))
            miou = series(records, 'mIoU', 'val')
            assert list(miou) == [values['iters']]  # validated at the end
            assert miou[values['iters']] == pytest.approx(
                values['mIoU'], abs=5e-5)


def _tool(name):
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        name, osp.join(ROOT, 'tools', 'experiments', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_tables_are_the_collectors_output():

    def load(path):
        with open(osp.join(ZOO, path)) as f:
            return json.load(f)

    def readme(method):
        with open(osp.join(ROOT, 'configs', method, 'README.md')) as f:
            return f.read()

    frskd = _tool('collect_frskd').table(load('frskd/results.json'))
    assert f'<!-- frskd-fashion-mnist:start -->\n{frskd}' in readme('frskd')
    reviewkd = _tool('collect_reviewkd')
    for exp in ('fashion-mnist', 'deepforest'):
        text = reviewkd.table(exp, load(f'reviewkd/results_{exp}.json'))
        assert f'<!-- reviewkd-{exp}:start -->\n{text}' in readme('reviewkd')
    skd = _tool('collect_skd_nuclei').markdown(load('skd/results.json'))
    assert f'<!-- skd-nuclei:start -->\n{skd}' in readme('skd')


# README blocks of the paired protocols with flat released layouts:
# (method README, block, released folder, collector arguments)
PAIRED = [
    ('kd', 'few-label', 'kd/fashion-mnist-1k',
     dict(arms=[('baseline', 'ResNet-20 (CE)'), ('kd', 'ResNet-20 + KD')],
          name='KD')),
    ('dist', 'dist-few-label', 'kd/fashion-mnist-1k',
     dict(arms=[('baseline', 'ResNet-20 (CE)'),
                ('dist', 'ResNet-20 + DIST')],
          name='DIST', versus=['kd', 'dist'], family_wise=True,
          reference=('kd', 'ResNet-20 + KD'))),
]


@pytest.mark.parametrize('method,mark,folder,kwargs', PAIRED)
def test_paired_protocol_block_recomputes_from_released_files(
        method, mark, folder, kwargs):
    """The block is exactly collect_paired_protocol.py's table of the
    released logs and test/fit json (its first line gives the selection)."""
    with open(osp.join(ROOT, 'configs', method, 'README.md')) as f:
        readme = f.read()
    start, end = f'<!-- {mark}:start -->\n', f'<!-- {mark}:end -->'
    block = readme[readme.index(start) + len(start):readme.index(end)]
    prefix = 'Selected on the validation split: '
    first = block.splitlines()[0]
    selected = first[len(prefix):-1] if first.startswith(prefix) else ''
    text = _tool('collect_paired_protocol').table(
        osp.join(ZOO, folder), selected=selected, **kwargs)
    assert block == text
