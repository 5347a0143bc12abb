"""collect_paired_protocol.py --preset reviewkd-* on hand-written work
dirs."""
import json
import os.path as osp
import statistics

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module')
def collector(load_tool):
    return load_tool('experiments/collect_paired_protocol.py')


def write_run(root, run, seed, values, key='coco/bbox_mAP', done=True):
    seed_dir = root / run / f'seed{seed}'
    log = seed_dir / '20260101_000000' / 'vis_data'
    log.mkdir(parents=True)
    lines = [json.dumps({key: v, 'coco/bbox_mAP_50': 2 * v, 'step': i})
             for i, v in enumerate(values, 1)]
    (log / 'scalars.json').write_text('\n'.join(lines) + '\n')
    if done:
        (seed_dir / 'done').write_text('')


def test_detection_table_deltas_and_paired_wins(tmp_path, collector):
    write_run(tmp_path, 'teacher_r50', 0, [0.1, 0.3])
    base = {0: [0.05, 0.10], 1: [0.06, 0.12], 2: [0.04, 0.11]}
    rkd = {0: [0.08, 0.13], 1: [0.07, 0.11], 2: [0.09, 0.14]}
    for seed in base:
        write_run(tmp_path, 'baseline_r18', seed, base[seed])
        write_run(tmp_path, 'reviewkd_r50-r18', seed, rkd[seed])
    write_run(tmp_path, 'reviewkd_r50-r18', 3, [0.9], done=False)

    results = collector.collect_preset('reviewkd-deepforest', str(tmp_path))
    assert set(results['reviewkd_r50-r18']['seeds']) == {
        'seed0', 'seed1', 'seed2'}  # seed3 unfinished
    assert results['baseline_r18']['seeds']['seed1']['best'] == 0.12
    text = collector.preset_table('reviewkd-deepforest', results)

    final_base = [100 * v[-1] for v in base.values()]
    final_rkd = [100 * v[-1] for v in rkd.values()]
    assert (f'{statistics.mean(final_base):.2f} ± '
            f'{statistics.stdev(final_base):.2f}') in text
    # mAP@50 column (written as twice the mAP above)
    assert f'{2 * statistics.mean(final_rkd):.2f}' in text
    delta = statistics.mean(final_rkd) - statistics.mean(final_base)
    assert f'baseline (mean final bbox mAP (%)): {delta:+.2f}' in text
    assert 'on 2 of 3 seeds' in text  # seed 1: 0.11 < 0.12


def test_no_detection_counts_as_zero(tmp_path, collector):
    (tmp_path / 'baseline_r18' / 'seed0' / '20260101_000000' /
     'vis_data').mkdir(parents=True)
    (tmp_path / 'baseline_r18' / 'seed0' / '20260101_000000' / 'vis_data' /
     'scalars.json').write_text(json.dumps({'loss': 1.0}) + '\n')
    (tmp_path / 'baseline_r18' / 'seed0' / 'done').write_text('')
    results = collector.collect_preset('reviewkd-deepforest', str(tmp_path))
    assert results['baseline_r18']['seeds']['seed0']['final'] == 0.0


def test_the_shipped_readme_has_both_blocks():
    text = open(osp.join(ROOT, 'configs/reviewkd/README.md')).read()
    for name in ('fashion-mnist', 'deepforest'):
        assert f'<!-- reviewkd-{name}:start -->' in text
        assert f'<!-- reviewkd-{name}:end -->' in text


def test_paired_t_interval_of_each_distilled_student(tmp_path, collector):
    base = {0: [0.10], 1: [0.12], 2: [0.11]}
    rkd = {0: [0.13], 1: [0.11], 2: [0.14]}
    for seed in base:
        write_run(tmp_path, 'baseline_r18', seed, base[seed])
        write_run(tmp_path, 'reviewkd_r50-r18', seed, rkd[seed])
    text = collector.preset_table(
        'reviewkd-deepforest',
        collector.collect_preset('reviewkd-deepforest', str(tmp_path)))
    diffs = [100 * (rkd[s][-1] - base[s][-1]) for s in base]  # 3, -1, 3
    mean, sd = statistics.mean(diffs), statistics.stdev(diffs)
    half = 4.302653 * sd / 3**0.5
    assert (f'95 % CI of the paired difference [{mean - half:+.2f}, '
            f'{mean + half:+.2f}] (includes 0)') in text
    assert 'on 2 of 3 seeds' in text


def test_one_seed_and_missing_baseline_seed_are_reported(tmp_path, collector):
    write_run(tmp_path, 'baseline_resnet20', 0, [85.0], key='accuracy/top1')
    write_run(tmp_path, 'baseline_resnet20', 1, [86.0], key='accuracy/top1')
    write_run(tmp_path, 'kd_resnet56-resnet20', 0, [86.5],
              key='accuracy/top1')
    text = collector.preset_table(
        'reviewkd-fashion-mnist',
        collector.collect_preset('reviewkd-fashion-mnist', str(tmp_path)))
    kd = [line for line in text.splitlines() if 'KD (T=4) - baseline' in line]
    assert len(kd) == 1
    assert '(mean final top-1 (%)): +1.50' in kd[0]
    assert 'one seed: no interval' in kd[0]
    assert 'unpaired, left out: seed1 (baseline only)' in kd[0]
    assert 'ReviewKD - baseline' not in text  # no ReviewKD run yet


def test_merge_adds_new_seeds_and_the_bf16_pair(tmp_path, collector):
    """New seeds and a new arm of a work dir are added to a released
    results.json; the bf16 arm is compared with the float32 arm seed by
    seed."""
    key = 'accuracy/top1'
    released = {
        'baseline_resnet20': dict(label='b', seeds={
            'seed0': dict(final=86.0, best=86.0, history=[86.0], minutes=4.0),
            'seed1': dict(final=87.0, best=87.0, history=[87.0], minutes=4.0)
        }),
        'reviewkd_resnet56-resnet20': dict(label='r', seeds={
            'seed0': dict(final=88.0, best=88.0, history=[88.0], minutes=9.),
            'seed1': dict(final=88.5, best=88.5, history=[88.5], minutes=9.)
        }),
    }
    write_run(tmp_path, 'reviewkd_resnet56-resnet20_bf16', 0, [88.3], key=key)
    write_run(tmp_path, 'reviewkd_resnet56-resnet20_bf16', 1, [88.1], key=key)
    write_run(tmp_path, 'baseline_resnet20', 2, [85.0], key=key)
    merged = collector.merge_results(
        released,
        collector.collect_preset('reviewkd-fashion-mnist', str(tmp_path)))
    assert set(merged['baseline_resnet20']['seeds']) == {
        'seed0', 'seed1', 'seed2'}
    assert released['baseline_resnet20']['seeds'].keys() == {'seed0', 'seed1'}
    assert merged['reviewkd_resnet56-resnet20']['seeds']['seed1'][
        'final'] == 88.5
    text = collector.preset_table('reviewkd-fashion-mnist', merged)
    pair = [line for line in text.splitlines()
            if 'bf16 autocast (`--amp`) - ResNet-20 + ReviewKD' in line]
    assert len(pair) == 1
    diffs = [88.3 - 88.0, 88.1 - 88.5]
    mean, sd = statistics.mean(diffs), statistics.stdev(diffs)
    half = 12.706205 * sd / 2**0.5
    assert f'(mean final top-1 (%)): {mean:+.2f}' in pair[0]
    assert 'on 1 of 2 seeds' in pair[0]
    assert f'[{mean - half:+.2f}, {mean + half:+.2f}]' in pair[0]
