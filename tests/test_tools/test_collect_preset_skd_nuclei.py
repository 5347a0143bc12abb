import json
import os
import os.path as osp
import statistics

import pytest


@pytest.fixture(scope='module')
def collector(load_tool):
    return load_tool('experiments/collect_paired_protocol.py')


def fake_run(work_dir, miou, times=(0.5, 0.3, 0.4), iters=600, wall=None):
    """The files MMEngine writes: <work_dir>/<timestamp>/vis_data/..."""
    vis = osp.join(work_dir, '20260101_000000', 'vis_data')
    os.makedirs(vis)
    with open(osp.join(vis, 'scalars.json'), 'w') as f:
        for i, t in enumerate(times):
            f.write(
                json.dumps(
                    dict(
                        loss=1.0, time=t, iter=(i + 1) * 50, step=(i + 1) *
                        50)) + '\n')
        f.write(
            json.dumps(dict(aAcc=90.0, mIoU=miou, mAcc=80.0, step=iters)) +
            '\n')
    if wall is not None:
        with open(osp.join(work_dir, 'done'), 'w') as f:
            f.write(str(wall))


def test_collect_table_and_readme(tmp_path, collector):
    work = str(tmp_path / 'work')
    fake_run(osp.join(work, 'teacher', 'seed0'), 80.0, iters=1200, wall=500)
    values = {
        'baseline': [70.0, 72.0, 71.0],
        'pi': [73.0, 74.0, 75.5],
        'pi-pa': [74.0],
        'all': []
    }
    for variant, mious in values.items():
        for seed, miou in enumerate(mious):
            fake_run(osp.join(work, variant, f'seed{seed}'), miou, wall=60)
    os.makedirs(osp.join(work, 'all', 'seed0'))  # started, no result yet

    results = collector.collect_preset('skd-nuclei', work)
    assert results['teacher']['mIoU'] == 80.0
    assert results['teacher']['sec_per_iter'] == 0.4  # median
    assert results['teacher']['wall_seconds'] == 500
    assert results['students']['all'] == {}
    assert sorted(results['students']['pi']) == ['seed0', 'seed1', 'seed2']

    table = collector.preset_table('skd-nuclei', results)
    rows = {
        line.split('|')[1].strip(): line
        for line in table.splitlines() if line.startswith('|')
    }
    pi = values['pi']
    expected = f'{statistics.mean(pi):.2f} ± {statistics.stdev(pi):.2f}'
    assert expected in rows['+ pixel-wise (Pi)']
    assert '| 74.00 |' in rows['+ Pi + pair-wise (Pa)']  # one seed: no std
    assert 'n/a' in rows['+ Pi + Pa + holistic (Ho)']
    assert '80.00' in rows['PSPNet-R34 teacher']

    readme = tmp_path / 'README.md'
    readme.write_text('# SKD\nbefore\n<!-- skd-nuclei:start -->\nold table\n'
                      '<!-- skd-nuclei:end -->\nafter\n')
    collector.main(
            ['--preset', 'skd-nuclei', work, '--readme', str(readme)])
    text = readme.read_text()
    assert 'old table' not in text
    assert text.startswith('# SKD\nbefore\n<!-- skd-nuclei:start -->\n')
    assert text.endswith('<!-- skd-nuclei:end -->\nafter\n')
    assert expected in text
    assert json.load(open(osp.join(work,
                                   'results.json')))['teacher']['mIoU'] == 80.0

    readme.write_text('no markers\n')
    with pytest.raises(ValueError, match='skd-nuclei:start'):
        collector.main(
            ['--preset', 'skd-nuclei', work, '--readme', str(readme)])


def test_paired_lines_per_variant(tmp_path, collector):
    work = str(tmp_path / 'work')
    values = {
        'baseline': [70.0, 72.0, 71.0],
        'pi': [71.0, 74.0, 74.0],  # diffs 1, 2, 3
        'all': [69.0],
    }
    for variant, mious in values.items():
        for seed, miou in enumerate(mious):
            fake_run(osp.join(work, variant, f'seed{seed}'), miou)
    text = collector.preset_table(
        'skd-nuclei', collector.collect_preset('skd-nuclei', work))
    half = 4.302653 / 3**0.5  # sd of 1, 2, 3 is 1
    assert ('- PSPNet-R18 + Pi - baseline (mean final mIoU (%)): +2.00; '
            'better than the baseline of the same seed on 3 of 3 seeds; '
            f'95 % CI of the paired difference [{2 - half:+.2f}, '
            f'{2 + half:+.2f}] (includes 0)') in text
    line = [t for t in text.splitlines() if t.startswith('- PSPNet-R18 + Pi'
                                                         ' + Pa + Ho')][0]
    assert ': -1.00;' in line and 'on 0 of 1 seeds' in line
    assert 'one seed: no interval' in line
    assert 'seed1 (baseline only), seed2 (baseline only)' in line
    assert 'Pi + Pa - baseline' not in text  # no pi-pa run
