"""The released results.json files (which the README tables are
re-tabulated from) agree with the released MMEngine text logs, and every
config a released file names exists, at its path or at the one
model_zoo/config_moves.json moved it to."""
import glob
import json
import os.path as osp
import re

import pytest

from training_logs import load_run, series

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


def test_readme_tables_are_the_collectors_output(load_tool):
    """Each README block is collect_paired_protocol.py --preset's table of
    the released results.json (the command the README shows)."""
    table = load_tool('experiments/collect_paired_protocol.py').preset_table

    def load(path):
        with open(osp.join(ZOO, path)) as f:
            return json.load(f)

    def readme(method):
        with open(osp.join(ROOT, 'configs', method, 'README.md')) as f:
            return f.read()

    for method, preset, results in [
        ('frskd', 'frskd-fashion-mnist', 'frskd/results.json'),
        ('reviewkd', 'reviewkd-fashion-mnist',
         'reviewkd/results_fashion-mnist.json'),
        ('reviewkd', 'reviewkd-deepforest',
         'reviewkd/results_deepforest.json'),
        ('skd', 'skd-nuclei', 'skd/results.json'),
    ]:
        text = readme(method)
        block = f'<!-- {preset}:start -->\n{table(preset, load(results))}'
        assert block in text, preset
        command = ('python tools/experiments/collect_paired_protocol.py '
                   f'--preset {preset} --from-results model_zoo/{results}')
        assert command in ' '.join(text.split()), preset


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
    ('skd', 'nuclei-protocol', 'nuclei_protocol',
     dict(arms=[('baseline', 'PSPNet-R18 (CE)'),
                ('skd-pi', '+ SKD pixel-wise'),
                ('skd-pi-pa', '+ SKD pixel + pair-wise'),
                ('skd', '+ SKD pixel + pair-wise + holistic'),
                ('cirkd', '+ CIRKD'), ('cwd', '+ CWD'), ('mgd', '+ MGD')],
          name='the method', metric='mIoU',
          versus=['skd', 'cirkd', 'cwd', 'mgd'], family_wise=True,
          teacher=('teacher', 'PSPNet-R34 teacher'))),
    ('reviewkd', 'detection-protocol', 'detection_protocol',
     dict(arms=[('baseline', 'FCOS R-18/2 (CE)'), ('reviewkd', '+ ReviewKD'),
                ('cwd', '+ CWD'), ('pkd', '+ PKD'), ('fgd', '+ FGD'),
                ('mgd', '+ MGD')],
          name='the method', metric='coco/bbox_mAP',
          versus=['reviewkd', 'cwd', 'pkd', 'fgd', 'mgd'], family_wise=True,
          teacher=('teacher', 'FCOS R-50/2 teacher'))),
]


@pytest.mark.parametrize('method,mark,folder,kwargs', PAIRED)
def test_paired_protocol_block_recomputes_from_released_files(
        load_tool, method, mark, folder, kwargs):
    """The block is exactly collect_paired_protocol.py's table of the
    released logs and test/fit json (its first line gives the selection)."""
    with open(osp.join(ROOT, 'configs', method, 'README.md')) as f:
        readme = f.read()
    start, end = f'<!-- {mark}:start -->\n', f'<!-- {mark}:end -->'
    block = readme[readme.index(start) + len(start):readme.index(end)]
    prefix = 'Selected on the validation split: '
    first = block.splitlines()[0]
    selected = first[len(prefix):-1] if first.startswith(prefix) else ''
    text = load_tool('experiments/collect_paired_protocol.py').table(
        osp.join(ZOO, folder), selected=selected, **kwargs)
    assert block == text


# a config path as a released file records it: relative, or absolute under
# the checkout the run was made in
CONFIG_PATH = re.compile(r'[\w./-]*?(?:configs|experiments)/[\w./-]+\.py\b')


def config_in_checkout(recorded):
    """The path relative to the checkout the run was made in: from the first
    ``configs``/``experiments`` folder on, normalised (``configs/cwd/../../
    experiments/skd/x.py`` is ``experiments/skd/x.py``); None for a script
    of tools/experiments/ or a task library's own (``.mim``) config."""
    parts = recorded.split('/')
    first = min(i for i, p in enumerate(parts)
                if p in ('configs', 'experiments'))
    if first and parts[first - 1] in ('tools', '.mim'):
        return None
    return osp.normpath('/'.join(parts[first:]))


def test_config_moves_point_from_gone_paths_to_existing_configs():
    with open(osp.join(ZOO, 'config_moves.json')) as f:
        moves = json.load(f)['moves']
    assert len(moves) >= 70
    for old, new in moves.items():
        assert not osp.exists(osp.join(ROOT, old)), f'{old} still exists'
        assert osp.isfile(osp.join(ROOT, new)), f'{old} -> {new}: missing'
        assert new.startswith('configs/') and new not in moves


def test_every_config_a_released_file_names_exists():
    with open(osp.join(ZOO, 'config_moves.json')) as f:
        moves = json.load(f)['moves']
    released = [
        p for p in glob.glob(osp.join(ZOO, '**', '*'), recursive=True)
        if p.endswith(('.log', '.py', '.json',
                       '.md')) and osp.basename(p) != 'config_moves.json'
    ]
    named, missing = set(), []
    for path in released:
        with open(path, encoding='utf-8', errors='replace') as f:
            for recorded in set(CONFIG_PATH.findall(f.read())):
                config = config_in_checkout(recorded)
                if config is None:
                    continue
                named.add(config)
                if not osp.isfile(osp.join(ROOT, moves.get(config, config))):
                    missing.append(f'{osp.relpath(path, ROOT)}: {recorded}')
    assert not missing, missing
    # the released logs name the teacher configs of three layouts
    psp = 'pspnet_r34-d8_1xb8-900iter_stardist-64x64.py'
    assert {
        f'experiments/skd/{psp}', f'configs/skd/stardist/{psp}',
        'configs/reviewkd/experiments/resnet56_1xb128-3e_fashion-mnist.py'
    } <= named
