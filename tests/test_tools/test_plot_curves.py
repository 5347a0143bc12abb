"""tools/analysis_tools/plot_curves.py on hand-written logs."""
import json
import statistics

import numpy as np
import pytest


@pytest.fixture(scope='module')
def tool(load_tool):
    return load_tool('analysis_tools/plot_curves.py')


def write_text_log(path, losses, distill, accs):
    """An epoch-based MMEngine text log: 2 iterations an epoch, logged at
    every iteration, a validation after every epoch."""
    lines, sec = [], 0
    for it, (loss, kd) in enumerate(zip(losses, distill), 1):
        epoch, cur = (it - 1) // 2 + 1, (it - 1) % 2 + 1
        extra = f'  distill.loss_kd: {kd:.4f}' if kd is not None else ''
        lines.append(f'Epoch(train) [{epoch}][{cur}/2]  lr: 1.0000e-01  '
                     f'eta: 0:00:01  time: 0.5000  data_time: 0.0100  '
                     f'loss: {loss:.4f}{extra}')
        if cur == 2:
            lines.append(f'Epoch(val) [{epoch}][10/10]    accuracy/top1: '
                         f'{accs[epoch - 1]:.4f}  data_time: 0.01  time: 0.1')
    path.write_text(''.join(
        f'2026/12/01 10:00:{sec + i:02d} - mmengine - INFO - {line}\n'
        for i, line in enumerate(lines)))


def test_prepare_curve_mean_minmax_and_std(tool):
    runs = [{
        1: 1.0,
        2: 4.0,
        3: 2.0
    }, {
        1: 3.0,
        2: 2.0,
        3: 5.0,
        4: 9.0
    }, {
        1: 2.0,
        2: 6.0,
        3: 2.0
    }]  # step 4 only in one run: dropped
    c = tool.prepare_curve(runs, band='minmax')
    assert c['n'] == 3
    np.testing.assert_array_equal(c['x'], [1, 2, 3])
    np.testing.assert_allclose(c['mean'], [2.0, 4.0, 3.0])
    np.testing.assert_allclose(c['low'], [1.0, 2.0, 2.0])
    np.testing.assert_allclose(c['high'], [3.0, 6.0, 5.0])
    s = tool.prepare_curve(runs, band='std')
    sd = [statistics.stdev(v) for v in ([1, 3, 2], [4, 2, 6], [2, 5, 2])]
    np.testing.assert_allclose(s['low'], np.array([2.0, 4.0, 3.0]) - sd)
    np.testing.assert_allclose(s['high'], np.array([2.0, 4.0, 3.0]) + sd)
    one = tool.prepare_curve([{5: 1.5}], band='std')
    assert one['low'][0] == one['high'][0] == 1.5
    with pytest.raises(ValueError, match='share no logged step'):
        tool.prepare_curve([{1: 1.0}, {2: 1.0}])
    with pytest.raises(ValueError, match='band'):
        tool.prepare_curve(runs, band='iqr')


def test_curves_of_text_logs_and_scalars_json_and_png(tmp_path, tool):
    base = [([2.0, 1.5, 1.0, 0.8], [85.0, 88.0]),
            ([2.2, 1.3, 1.2, 0.6], [86.0, 87.0])]
    kd = [([3.0, 2.0, 1.6, 1.2], [0.9, 0.7, 0.5, 0.4], [87.0, 89.0])]
    paths = []
    for seed, (losses, accs) in enumerate(base):
        write_text_log(tmp_path / f'base{seed}.log', losses, [None] * 4, accs)
        paths.append(str(tmp_path / f'base{seed}.log'))
    # the distilled run as MMEngine's scalars.json
    scalars = tmp_path / 'kd' / '20260101_000000' / 'vis_data'
    scalars.mkdir(parents=True)
    losses, distill, accs = kd[0]
    entries = []
    for it, (loss, d) in enumerate(zip(losses, distill), 1):
        entries.append({
            'loss': loss,
            'distill.loss_kd': d,
            'epoch': (it - 1) // 2 + 1,
            'iter': it,
            'step': it
        })
        if it % 2 == 0:
            entries.append({
                'accuracy/top1': accs[it // 2 - 1],
                'step': it // 2
            })
    (scalars / 'scalars.json').write_text(''.join(
        json.dumps(e) + '\n' for e in entries))

    arms = {
        'baseline': [tool.load_run(p) for p in paths],
        'KD': [tool.load_run(str(tmp_path / 'kd'))],
    }
    assert tool.loss_keys(arms) == ['loss', 'distill.loss_kd']
    assert tool.metric_keys(arms) == ['accuracy/top1']
    loss = tool.prepare(arms, 'loss', 'train', 'minmax')
    np.testing.assert_array_equal(loss['baseline']['x'], [1, 2, 3, 4])
    np.testing.assert_allclose(loss['baseline']['mean'], [2.1, 1.4, 1.1, 0.7])
    np.testing.assert_allclose(loss['baseline']['low'], [2.0, 1.3, 1.0, 0.6])
    np.testing.assert_allclose(loss['baseline']['high'], [2.2, 1.5, 1.2, 0.8])
    np.testing.assert_allclose(loss['KD']['mean'], losses)
    assert set(tool.prepare(arms, 'distill.loss_kd', 'train',
                            'minmax')) == {'KD'}  # the baseline has none
    acc = tool.prepare(arms, 'accuracy/top1', 'val', 'std')
    np.testing.assert_array_equal(acc['baseline']['x'], [1, 2])  # epochs
    np.testing.assert_allclose(acc['baseline']['mean'], [85.5, 87.5])
    sd = statistics.stdev([85.0, 86.0])
    np.testing.assert_allclose(acc['baseline']['low'], [85.5 - sd, 87.5 - sd])

    out = tmp_path / 'fig' / 'curves.png'
    readme = tmp_path / 'README.md'
    readme.write_text('x\n<!-- c:start -->\n<!-- c:end -->\ny\n')
    tool.main([
        str(out), '--arm', 'baseline',
        str(tmp_path / 'base*.log'), '--arm', 'KD',
        str(tmp_path / 'kd'), '--title', 'toy', '--readme',
        str(readme), '--mark', 'c'
    ])
    with open(out, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    import matplotlib.image
    image = matplotlib.image.imread(str(out))
    assert image.shape[0] > 200 and image.shape[1] > 400  # 1 row x 3 panels
    assert image[..., :3].std() > 0.05  # not blank
    text = readme.read_text()
    assert '![toy](fig/curves.png)' in text
    assert text.startswith('x\n<!-- c:start -->\n')
    assert text.endswith('<!-- c:end -->\ny\n')

    with pytest.raises(FileNotFoundError, match='no run matches'):
        tool.main([str(out), '--arm', 'a', str(tmp_path / 'none*.log')])
    with pytest.raises(ValueError, match='none of the runs logs'):
        tool.plot(arms, str(out), metrics=['mIoU'], keys=['loss_x'])


def test_alias_fills_only_runs_without_the_key(tool):
    baseline = [dict(mode='train', step=1, loss=2.0)]
    student = [dict(mode='train', step=1, loss=5.0, **{'student.loss': 1.5})]
    for run in (baseline, student):
        tool.apply_aliases(run, ['loss=student.loss'])
    assert baseline[0]['student.loss'] == 2.0
    assert student[0]['student.loss'] == 1.5  # its own value is kept
    with pytest.raises(ValueError, match='OLD=NEW'):
        tool.apply_aliases(baseline, ['loss'])
