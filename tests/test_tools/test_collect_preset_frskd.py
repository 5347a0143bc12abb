"""collect_paired_protocol.py --preset frskd-fashion-mnist on hand-written
work dirs."""
import json
import os.path as osp
import statistics

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module')
def collector(load_tool):
    return load_tool('experiments/collect_paired_protocol.py')


def write_run(root, run, seed, accs, done=True, stamp='20260101_000000'):
    log = root / run / f'seed{seed}' / stamp / 'vis_data'
    log.mkdir(parents=True)
    lines = []
    for epoch, acc in enumerate(accs, 1):
        lines.append(json.dumps(dict(loss=1.0, epoch=epoch, step=epoch)))
        lines.append(json.dumps({'accuracy/top1': acc, 'step': epoch}))
    (log / 'scalars.json').write_text('\n'.join(lines) + '\n')
    if done:
        (root / run / f'seed{seed}' / 'done').write_text('')


def test_final_best_mean_std_and_readme_block(tmp_path, collector):
    base = {0: [80.0, 85.0, 84.0], 1: [81.0, 86.5, 86.0]}
    frskd = {0: [82.0, 87.0, 88.0], 1: [83.0, 88.0, 87.5], 2: [1.0, 2.0]}
    for seed, accs in base.items():
        write_run(tmp_path, 'baseline', seed, accs)
    for seed, accs in frskd.items():
        write_run(tmp_path, 'frskd', seed, accs, done=(seed != 2))

    results = collector.collect_preset('frskd-fashion-mnist', str(tmp_path))
    assert set(results['frskd']['seeds']) == {'seed0', 'seed1'}  # 2 unfinished
    assert results['baseline']['seeds']['seed1']['final'] == 86.0
    assert results['baseline']['seeds']['seed1']['best'] == 86.5

    text = collector.preset_table('frskd-fashion-mnist', results)
    final_base = [84.0, 86.0]
    final_frskd = [88.0, 87.5]
    assert (f'| ResNet-14 (CE only) | 2 | '
            f'{statistics.mean(final_base):.2f} ± '
            f'{statistics.stdev(final_base):.2f} |') in text
    assert f'{statistics.stdev([86.5, 88.0]):.2f}' in text  # best, frskd
    delta = statistics.mean(final_frskd) - statistics.mean(final_base)
    assert f'FRSKD - baseline (mean final top-1): {delta:+.2f}' in text

    readme = tmp_path / 'README.md'
    readme.write_text('# x\n<!-- frskd-fashion-mnist:start -->\nold\n'
                      '<!-- frskd-fashion-mnist:end -->\ntail\n')
    collector.replace_marked_block(str(readme), 'frskd-fashion-mnist', text)
    content = readme.read_text()
    assert 'old' not in content and text in content
    assert content.endswith('<!-- frskd-fashion-mnist:end -->\ntail\n')


def test_missing_readme_block_raises(tmp_path, collector):
    readme = tmp_path / 'README.md'
    readme.write_text('no block\n')
    with pytest.raises(ValueError, match='frskd-fashion-mnist'):
        collector.replace_marked_block(str(readme), 'frskd-fashion-mnist',
                                       'table\n')


def test_the_shipped_readme_has_the_block(collector):
    text = open(osp.join(ROOT, 'configs/frskd/README.md')).read()
    assert '<!-- frskd-fashion-mnist:start -->' in text
    assert '<!-- frskd-fashion-mnist:end -->' in text


def test_paired_interval_and_unpaired_seed(tmp_path, collector):
    base = {0: [80.0, 85.0], 1: [81.0, 86.0], 2: [80.0, 84.0]}
    frskd = {0: [82.0, 86.0], 1: [83.0, 89.0], 2: [82.0, 87.0],
             3: [80.0, 90.0]}  # seed 3 has no baseline
    for seed, accs in base.items():
        write_run(tmp_path, 'baseline', seed, accs)
    for seed, accs in frskd.items():
        write_run(tmp_path, 'frskd', seed, accs)
    text = collector.preset_table(
        'frskd-fashion-mnist',
        collector.collect_preset('frskd-fashion-mnist', str(tmp_path)))
    diffs = [86.0 - 85.0, 89.0 - 86.0, 87.0 - 84.0]  # 1, 3, 3
    mean = statistics.mean(diffs)
    half = 4.302653 * statistics.stdev(diffs) / 3**0.5  # t_{0.975, 2}
    assert (f'- FRSKD - baseline (mean final top-1): {mean:+.2f}; better '
            'than the baseline of the same seed on 3 of 3 seeds; 95 % CI of '
            f'the paired difference [{mean - half:+.2f}, {mean + half:+.2f}]'
            ) in text
    assert 'unpaired, left out: seed3 (distilled only)' in text
    # the mean of the 4 FRSKD seeds (not paired) stays in the table row
    finals = [86.0, 89.0, 87.0, 90.0]
    assert (f'| ResNet-14 + FRSKD | 4 | {statistics.mean(finals):.2f} ± '
            f'{statistics.stdev(finals):.2f} |') in text


def test_from_results_retabulates_the_same_table(tmp_path, collector):
    for seed, (b, f) in enumerate([(84.0, 85.0), (85.0, 85.5)]):
        write_run(tmp_path, 'baseline', seed, [80.0, b])
        write_run(tmp_path, 'frskd', seed, [80.0, f])
    collector.main(['--preset', 'frskd-fashion-mnist', str(tmp_path)])
    text = (tmp_path / 'results.md').read_text()
    readme = tmp_path / 'README.md'
    readme.write_text('<!-- frskd-fashion-mnist:start -->\n'
                      '<!-- frskd-fashion-mnist:end -->\n')
    collector.main([
        '--preset', 'frskd-fashion-mnist', '--from-results',
        str(tmp_path / 'results.json'), '--readme',
        str(readme)
    ])
    assert text in readme.read_text()
    assert 'on 2 of 2 seeds' in text
    with pytest.raises(SystemExit):
        collector.main(['--preset', 'frskd-fashion-mnist'])  # no input
