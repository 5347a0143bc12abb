"""collect_paired_protocol.py and compare_with_protocol.py on hand-written
work dirs of a paired protocol (FRSKD's small-data, ReviewKD's short
schedule)."""
import json
import math

import pytest

T_975_2 = 4.302653  # Student's t, 0.975 quantile, 2 degrees of freedom


@pytest.fixture(scope='module')
def collector(load_tool):
    return load_tool('experiments/collect_paired_protocol.py')


@pytest.fixture(scope='module')
def compare(load_tool):
    return load_tool('experiments/compare_with_protocol.py')


def write_seed(root, run, seed, vals, test=None, fit=None, done=True):
    """A run as the script leaves it: MMEngine's scalars.json (validation
    every 5 epochs), done, test.json and fit.json (tools/test.py --out)."""
    d = root / run / f'seed{seed}'
    log = d / '20260101_000000' / 'vis_data'
    log.mkdir(parents=True)
    lines = []
    for i, acc in enumerate(vals, 1):
        lines.append(json.dumps(dict(loss=1.0, epoch=5 * i, step=5 * i)))
        lines.append(json.dumps({'accuracy/top1': acc, 'step': 5 * i}))
    (log / 'scalars.json').write_text('\n'.join(lines) + '\n')
    if done:
        (d / 'done').write_text('')
    for name, value in (('test', test), ('fit', fit)):
        if value is not None:
            (d / f'{name}.json').write_text(
                json.dumps({'accuracy/top1': value}))


def test_table_paired_interval_and_json(tmp_path, collector, compare):
    base_test, frskd_test = [80.0, 81.0, 82.0], [81.0, 83.0, 85.0]
    for seed in range(3):
        write_seed(tmp_path, 'baseline', seed, [70.0, 80.0 + seed],
                   test=base_test[seed], fit=99.0)
        write_seed(tmp_path, 'frskd', seed, [60.0, 81.0 + seed],
                   test=frskd_test[seed], fit=95.0)
    # an unfinished seed is left out of the validation column
    write_seed(tmp_path, 'frskd', 3, [50.0], done=False)
    arms = [('baseline', 'ResNet-14 (CE)'), ('frskd', 'ResNet-14 + FRSKD')]
    text = collector.table(str(tmp_path), arms, 'FRSKD', 'lr=0.03')
    # differences 1, 2, 3: mean 2, sd 1, half-width t * 1 / sqrt(3)
    half = T_975_2 / math.sqrt(3)
    assert (f'test top-1 (%)): +2.00; better than the baseline of the same '
            f'seed on 3 of 3 seeds; 95 % CI of the paired difference '
            f'[{2 - half:+.2f}, {2 + half:+.2f}] (includes 0)') in text
    # validation: final values 80..82 vs 81..83, difference 1 on every seed
    assert 'validation top-1 (%)): +1.00; better than the baseline of the ' \
        'same seed on 3 of 3 seeds' in text
    assert '| ResNet-14 + FRSKD | 3 | 83.00 ± 2.00 | 82.00 ± 1.00 | ' \
        '95.00 ± 0.00 |' in text
    assert 'seed2: 82.00 -> 85.00 (+3.00)' in text
    result = collector.results_json(str(tmp_path), arms, 'FRSKD', 'lr=0.03')
    assert result['test_comparison']['diffs'] == [1.0, 2.0, 3.0]
    assert result['test_comparison']['ci'] == pytest.approx(
        (2 - half, 2 + half))

    demo = tmp_path / 'demo'
    write_seed(demo, 'baseline', 0, [80.0], test=80.5)
    write_seed(demo, 'frskd', 0, [81.0], test=80.0)
    out = compare.report(str(demo), result, 'seed0')
    assert 'FRSKD - baseline -0.50 (this run, seed0)' in out
    assert f'protocol, 3 paired seeds: FRSKD - baseline +2.00, 95 % CI ' \
        f'[{2 - half:+.2f}, {2 + half:+.2f}] (includes 0); FRSKD better ' \
        'on 3 of 3 seeds' in out
    assert "the protocol's own seed0: +1.00" in out


def test_selection_reads_validation_only(tmp_path, collector):
    # the run with the better final validation top-1 wins, whatever its
    # test top-1 (the test set is never used for a choice)
    write_seed(tmp_path, 'select_baseline_lr0.1', 100, [70.0, 82.0],
               test=90.0)
    write_seed(tmp_path, 'select_baseline_lr0.03', 100, [70.0, 83.0],
               test=10.0)
    assert collector.best_run(
        str(tmp_path),
        ['select_baseline_lr0.1', 'select_baseline_lr0.03']) == \
        'select_baseline_lr0.03'
    with pytest.raises(SystemExit, match='no finished selection run'):
        collector.best_run(str(tmp_path), ['select_missing'])


def test_arms_and_name_come_from_the_arguments(tmp_path, collector, compare):
    """Another method's arms: the table, the json and the demo's report name
    that method, and the baseline is the first arm."""
    for seed, (b, r) in enumerate([(84.0, 86.5), (85.0, 86.0)]):
        write_seed(tmp_path, 'baseline', seed, [b], test=b, fit=b + 1)
        write_seed(tmp_path, 'reviewkd', seed, [r], test=r, fit=r + 1)
    arms = [('baseline', 'ResNet-20 (CE)'),
            ('reviewkd', 'ResNet-20 + ReviewKD')]
    text = collector.table(str(tmp_path), arms, 'ReviewKD')
    assert '| ResNet-20 + ReviewKD | 2 | 86.25 ± 0.35 |' in text
    assert 'Per seed (test top-1, baseline -> ReviewKD): seed0: 84.00 -> ' \
        '86.50 (+2.50); seed1: 85.00 -> 86.00 (+1.00).' in text
    result = collector.results_json(str(tmp_path), arms, 'ReviewKD')
    assert (result['baseline'], result['method']) == ('baseline', 'reviewkd')
    assert result['test_comparison']['diffs'] == [2.5, 1.0]
    assert result['test_comparison']['wins'] == 2
    demo = tmp_path / 'demo'
    write_seed(demo, 'baseline', 1, [80.0], test=84.0)
    write_seed(demo, 'reviewkd', 1, [81.0], test=85.25)
    out = compare.report(str(demo), result, 'seed1')
    assert 'ReviewKD - baseline +1.25 (this run, seed1)' in out
    assert 'ReviewKD better on 2 of 2 seeds' in out
    assert "the protocol's own seed1: +1.00" in out


def test_released_layout_gives_the_same_table(tmp_path, collector):
    """--release copies each finished run's training log and test/fit json
    into <DIR>/<arm>/seed<N>.{log,test.json,fit.json}; the collector reads
    that layout to the same table (the released files alone recompute every
    number). An unfinished run is not released."""
    work = tmp_path / 'work'

    def text_log_seed(arm, seed, val, test=None, done=True):
        d = work / arm / f'seed{seed}' / '20260101_000000'
        d.mkdir(parents=True)
        (d / '20260101_000000.log').write_text(
            '2026/01/01 00:00:00 - mmengine - INFO - Epoch(val) [4][20/20]'
            f'    accuracy/top1: {val:.4f}  data_time: 0.1  time: 0.2\n')
        if done:
            (d.parent / 'done').write_text('')
        if test is not None:
            (d.parent / 'test.json').write_text(
                json.dumps({'accuracy/top1': test}))

    for seed, (b, k) in enumerate(((80.0, 82.0), (81.0, 82.5))):
        text_log_seed('baseline', seed, b - 1, b)
        text_log_seed('kd', seed, k - 1, k)
    text_log_seed('select_baseline_lr0.1', 100, 78.0)
    text_log_seed('kd', 2, 50.0, done=False)
    arms = [('baseline', 'ResNet-20 (CE)'), ('kd', 'ResNet-20 + KD')]
    released = tmp_path / 'released'
    collector.release(str(work), ['baseline', 'kd', 'select_baseline_lr0.1'],
                      str(released))
    assert sorted(p.name for p in (released / 'kd').iterdir()) == [
        'seed0.log', 'seed0.test.json', 'seed1.log', 'seed1.test.json']
    from_work = collector.table(str(work), arms, 'KD')
    assert collector.table(str(released), arms, 'KD') == from_work
    assert 'KD - baseline (mean final test top-1 (%)): +1.75' in from_work
    assert 'Selection runs (final validation top-1 (%), seeds): ' \
        'baseline_lr0.1 78.00 (100).' in from_work


def test_median_seed_is_the_seed_of_the_median_difference(compare):
    seeds = ['seed0', 'seed1', 'seed2', 'seed3', 'seed4']
    results = dict(test_comparison=dict(seeds=seeds,
                                        diffs=[1.0, 3.0, 2.0, 5.0, -1.0]))
    assert compare.median_seed(results) == 'seed2'
    # an even count: the lower of the two middle differences (2.0)
    results['test_comparison'] = dict(seeds=seeds[:4],
                                      diffs=[4.0, 2.0, 3.0, 1.0])
    assert compare.median_seed(results) == 'seed1'


def test_multi_arm_family_versus_and_teacher_row_on_miou(tmp_path, collector,
                                                         load_tool):
    """The nuclei protocol's layout: mIoU, three arms against the baseline,
    one against a second reference, a Bonferroni-corrected interval over
    the family (3 + 1 comparisons), a teacher row that is not compared."""
    from scipy.stats import t
    tests = dict(baseline=[80.0, 81.0, 82.0], skd=[81.0, 83.0, 85.0],
                 cwd=[82.0, 83.5, 85.5])
    for arm, values in tests.items():
        for seed, value in enumerate(values):
            d = tmp_path / arm / f'seed{seed}'
            log = d / '20260101_000000' / 'vis_data'
            log.mkdir(parents=True)
            (log / 'scalars.json').write_text(
                json.dumps(dict(loss=1.0, iter=450, step=450)) + '\n' +
                json.dumps(dict(mIoU=value - 1, step=450)) + '\n')
            (d / 'done').write_text('')
            (d / 'test.json').write_text(json.dumps(dict(mIoU=value)))
    t_dir = tmp_path / 'teacher' / 'seed0'
    (t_dir / '20260101_000000' / 'vis_data').mkdir(parents=True)
    (t_dir / '20260101_000000' / 'vis_data' / 'scalars.json').write_text(
        json.dumps(dict(mIoU=88.0, step=900)) + '\n')
    (t_dir / 'done').write_text('')
    (t_dir / 'test.json').write_text(json.dumps(dict(mIoU=89.0)))
    arms = [('baseline', 'R18'), ('skd', '+ SKD'), ('cwd', '+ CWD')]
    text = collector.table(str(tmp_path), arms, 'the method', metric='mIoU',
                           versus=['skd', 'cwd'], family_wise=True,
                           teacher=('teacher', 'R34 teacher'))
    assert '| run | seeds | test mIoU (%) | validation mIoU (%) |' in text
    assert 'training-subset' not in text  # no fit.json anywhere
    assert '| R34 teacher | 1 | 89.00 | 88.00 |' in text
    assert 'Family: 3 comparisons of the test mIoU' in text
    # CWD - SKD: differences 1, 0.5, 0.5: mean 2/3, sd sqrt(1/12)
    sd = math.sqrt(1 / 12)
    half = t.ppf(1 - 0.05 / 3 / 2, 2) * sd / math.sqrt(3)
    assert ('+ CWD - + SKD (mean final test mIoU (%)): +0.67; better than '
            'the + SKD of the same seed on 3 of 3 seeds') in text
    assert (f'Bonferroni-corrected for 3 comparisons (98.33 %): '
            f'[{2 / 3 - half:+.2f}, {2 / 3 + half:+.2f}]') in text
    # validation comparisons are not corrected; the per-seed table
    val_lines = [ln for ln in text.splitlines() if 'validation mIoU (%)):'
                 in ln]
    assert len(val_lines) == 3 and not any('Bonferroni' in ln
                                           for ln in val_lines)
    assert '| test mIoU (%) | seed0 | seed1 | seed2 |' in text
    assert '| + CWD | 82.00 | 83.50 | 85.50 |' in text
    # the json behind the forest plot: the same four comparisons
    res = collector.results_json(str(tmp_path), arms, 'the method',
                                 metric='mIoU', versus=['skd', 'cwd'],
                                 family_wise=True)
    comps = {(c['arm'], c['reference']): c for c in res['comparisons']}
    assert set(comps) == {('skd', 'baseline'), ('cwd', 'baseline'),
                          ('cwd', 'skd')}
    low, high = comps[('cwd', 'skd')]['corrected']
    assert low == pytest.approx(2 / 3 - half)
    assert high == pytest.approx(2 / 3 + half)
    assert comps[('cwd', 'skd')]['family'] == 3

    # drawn, and written into a README block with its command
    plot = load_tool('analysis_tools/plot_paired_differences.py')
    assert [r['text'] for r in plot.rows(res)] == [
        '+ SKD - baseline', '+ CWD - baseline', '+ CWD - + SKD']
    (tmp_path / 'results.json').write_text(json.dumps(res))
    readme = tmp_path / 'README.md'
    readme.write_text('a\n<!-- forest:start -->\nold\n<!-- forest:end -->\n')
    png = tmp_path / 'forest.png'
    plot.main([str(tmp_path / 'results.json'), str(png), '--readme',
               str(readme), '--mark', 'forest', '--title', 'T'])
    import matplotlib.image
    assert matplotlib.image.imread(str(png)).ndim == 3
    text = readme.read_text()
    assert '![T](forest.png)' in text and 'old' not in text
    assert 'plot_paired_differences.py' in text


def test_reference_run_is_compared_only_as_the_versus_reference(
        tmp_path, collector):
    """``reference``: a row and the REF of ``versus``, never compared with
    the baseline, so the family is arms - 1 + versus - 1 = 2."""
    for arm, values in dict(baseline=[80.0, 81.0, 82.0],
                            kd=[80.5, 81.0, 83.0],
                            dist=[81.0, 82.0, 84.0]).items():
        for seed, value in enumerate(values):
            write_seed(tmp_path, arm, seed, [value - 1], test=value)
    text = collector.table(str(tmp_path), [('baseline', 'R20'),
                                           ('dist', '+ DIST')], 'DIST',
                           versus=['kd', 'dist'], family_wise=True,
                           reference=('kd', '+ KD'))
    assert '| + KD | 3 | ' in text
    assert 'Family: 2 comparisons' in text
    assert '+ KD - baseline' not in text
    assert ('+ DIST - + KD (mean final test top-1 (%)): +0.83; better than '
            'the + KD of the same seed on 3 of 3 seeds') in text
    assert '| + KD | 80.50 | 81.00 | 83.00 |' in text  # per-seed table
    res = collector.results_json(str(tmp_path), [('baseline', 'R20'),
                                                 ('dist', '+ DIST')], 'DIST',
                                 versus=['kd', 'dist'], family_wise=True,
                                 reference=('kd', '+ KD'))
    assert [(c['arm'], c['reference'], c['family'])
            for c in res['comparisons']] == [('dist', 'baseline', 2),
                                             ('dist', 'kd', 2)]


def test_a_resumed_run_is_released_with_all_its_logs(tmp_path, collector):
    """A run killed and resumed has two timestamp dirs: the later log (which
    ends with the final validation) is seed<N>.log, the earlier one
    seed<N>.interrupted.log; the released layout reads to the final value
    of the work dir. A folder not named by a timestamp is no training log."""
    work = tmp_path / 'work'
    seed = work / 'kd' / 'seed0'
    for stamp, epoch, val in (('20260101_000000', 2, 70.0),
                              ('20260101_010000', 4, 75.0)):
        d = seed / stamp
        d.mkdir(parents=True)
        (d / f'{stamp}.log').write_text(
            f'2026/01/01 00:00:00 - mmengine - INFO - Epoch(val) [{epoch}]'
            f'[20/20]    accuracy/top1: {val:.4f}  data_time: 0.1\n')
    (seed / 'test').mkdir()
    (seed / 'test' / 'test.log').write_text('not a training log\n')
    (seed / 'done').write_text('')
    (seed / 'test.json').write_text(json.dumps({'accuracy/top1': 74.0}))
    released = tmp_path / 'released'
    collector.release(str(work), ['kd'], str(released))
    assert sorted(p.name for p in (released / 'kd').iterdir()) == [
        'seed0.interrupted.log', 'seed0.log', 'seed0.test.json']
    assert '[4][20/20]' in (released / 'kd' / 'seed0.log').read_text()
    assert '[2][20/20]' in (released / 'kd' /
                            'seed0.interrupted.log').read_text()
    assert collector.collect_run(str(released / 'kd')) == \
        collector.collect_run(str(work / 'kd')) == dict(
            val={'seed0': 75.0}, test={'seed0': 74.0}, fit={})


@pytest.mark.parametrize('second', ['train only', 'scalars only'])
def test_a_resumed_run_whose_last_log_cannot_be_released_is_refused(
        tmp_path, collector, second):
    """The released seed<N>.log must give the run's final validation: a
    last attempt that logged none (killed in its final validation after
    the checkpoint) or that left only a scalars.json is refused, saying
    which run, instead of losing the value."""
    seed = tmp_path / 'work' / 'kd' / 'seed0'
    first = seed / '20260101_000000'
    first.mkdir(parents=True)
    (first / '20260101_000000.log').write_text(
        '2026/01/01 00:00:00 - mmengine - INFO - Epoch(val) [4][20/20]'
        '    accuracy/top1: 75.0000  data_time: 0.1\n')
    last = seed / '20260101_010000'
    if second == 'train only':
        last.mkdir()
        (last / '20260101_010000.log').write_text(
            '2026/01/01 01:00:00 - mmengine - INFO - Epoch(train) [4][1/20]'
            '    lr: 1.0000e-01  loss: 1.0000\n')
    else:
        (last / 'vis_data').mkdir(parents=True)
        (last / 'vis_data' / 'scalars.json').write_text(
            json.dumps({'accuracy/top1': 75.0, 'step': 4}) + '\n')
    (seed / 'done').write_text('')
    with pytest.raises(SystemExit, match=str(seed)):
        collector.release(str(tmp_path / 'work'), ['kd'],
                          str(tmp_path / 'released'))
    assert not (tmp_path / 'released' / 'kd' / 'seed0.log').exists()


@pytest.mark.parametrize('metric, value', [('accuracy/top1', 79.13000011),
                                           ('mIoU', 63.99999857),
                                           ('coco/bbox_mAP', 0.117)])
def test_a_run_with_unrounded_scalars_is_released(tmp_path, collector, metric,
                                                  value):
    """MMEngine writes a metric unrounded to scalars.json and to 4 decimals
    to the text log: the text log still gives the run's final validation,
    so the run is released; a last log 1e-4 off is refused."""
    seed = tmp_path / 'work' / 'kd' / 'seed0'
    stamp = seed / '20260101_000000'
    (stamp / 'vis_data').mkdir(parents=True)
    (stamp / 'vis_data' / 'scalars.json').write_text(
        json.dumps({metric: value, 'step': 4}) + '\n')
    log = stamp / '20260101_000000.log'
    log.write_text(
        '2026/01/01 00:00:00 - mmengine - INFO - Epoch(val) [4][20/20]'
        f'    {metric}: {value:.4f}  data_time: 0.1\n')
    (seed / 'done').write_text('')
    released = tmp_path / 'released'
    collector.release(str(tmp_path / 'work'), ['kd'], str(released), metric)
    assert (released / 'kd' / 'seed0.log').read_text() == log.read_text()
    log.write_text(log.read_text().replace(f'{value:.4f}',
                                           f'{value + 1e-4:.4f}'))
    with pytest.raises(SystemExit, match='does not end with'):
        collector.release(str(tmp_path / 'work'), ['kd'],
                          str(tmp_path / 'again'), metric)
