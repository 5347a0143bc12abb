"""tools/analysis_tools/training_logs.py on hand-written MMEngine logs."""
import json

import pytest

from training_logs import (load_run, parse_text_log, replace_marked_block,
                           series, wall_minutes)

PRE = '2026/12/01 20:{:02d}:{:02d} - mmengine - INFO - '
# an epoch-based run: 10 iterations an epoch, logged every 5, a validation
# progress line (with eta) and the metrics line of each validation
EPOCH_LOG = [
    'Config: dict(a=1)',
    'Epoch(train)   [1][ 5/10]  base_lr: 1.0000e-03 lr: 1.0000e-03  '
    'eta: 0:11:02  time: 0.6000  data_time: 0.0200  loss: 9.2500  '
    'loss_cls: 0.9400  distill.loss_hcl: 6.6200',
    'Epoch(train)   [1][10/10]  lr: 1.0000e-03  eta: 0:10:00  time: 0.5000'
    '  data_time: 0.0100  loss: 8.0000  loss_cls: 0.8000  '
    'distill.loss_hcl: 6.0000',
    'Epoch(val)  [1][ 5/11]    eta: 0:00:01  time: 0.1000  data_time: 0.01',
    'Epoch(val) [1][11/11]    coco/bbox_mAP: 0.1300  coco/bbox_mAP_50: '
    '0.4100  data_time: 0.0055  time: 0.1146',
    'Epoch(train)   [2][ 5/10]  lr: 1.0000e-03  eta: 0:09:00  time: 0.5000'
    '  data_time: 0.0100  loss: 7.0000  loss_cls: 0.7000  '
    'distill.loss_hcl: 5.5000',
    'Epoch(val) [2][11/11]    coco/bbox_mAP: 0.1500  coco/bbox_mAP_50: '
    '0.4500  data_time: 0.0055  time: 0.1146',
]


def write_log(path, lines, pre=PRE):
    text = [pre.format(i // 60, i % 60) + line for i, line in enumerate(lines)]
    path.write_text('\n'.join(text) + '\n')


def test_epoch_based_text_log(tmp_path):
    log = tmp_path / 'run.log'
    write_log(log, EPOCH_LOG)
    records = parse_text_log(str(log))
    train = [r for r in records if r['mode'] == 'train']
    val = [r for r in records if r['mode'] == 'val']
    assert [r['step'] for r in train] == [5, 10, 15]  # (epoch - 1) * 10 + i
    assert [r['epoch'] for r in train] == [1, 1, 2]
    assert train[0]['distill.loss_hcl'] == 6.62
    assert train[0]['base_lr'] == 1e-3 and 'eta' not in train[0]
    assert [(r['step'], r['coco/bbox_mAP']) for r in val] == [(1, 0.13),
                                                              (2, 0.15)]
    assert series(records, 'loss', 'train') == {5: 9.25, 10: 8.0, 15: 7.0}
    # lines 1 .. 6 at one second each
    assert wall_minutes(records) == pytest.approx(5 / 60)


def test_iteration_based_text_log_without_year(tmp_path):
    log = tmp_path / 'run.log'
    write_log(
        log, [
            'Iter(train) [ 50/100]  lr: 1.0e-02  eta: 0:00:10  time: 1.3000  '
            'data_time: 0.0200  loss: 4.3000  decode.loss_ce: 0.1300  '
            'distill.loss_pi: 4.1000  critic.loss_wd: 0.0011',
            'Iter(train) [100/100]  lr: 1.0e-02  eta: 0:00:00  time: 1.1000  '
            'data_time: 0.0200  loss: 2.5000  decode.loss_ce: 0.1000  '
            'distill.loss_pi: 2.4000  critic.loss_wd: 0.0012',
            'Iter(val) [4/4]    aAcc: 95.5600  mIoU: 88.9600  mAcc: 94.7300'
            '  data_time: 0.0037  time: 0.1229',
        ],
        pre='11/24 05:{:02d}:{:02d} - mmengine - INFO - ')
    records = load_run(str(log))
    assert series(records, 'distill.loss_pi', 'train') == {50: 4.1, 100: 2.4}
    assert series(records, 'mIoU', 'val') == {100: 88.96}  # at iteration 100
    assert not any('epoch' in r for r in records)
    assert wall_minutes(records) == pytest.approx(2 / 60)


def test_scalars_json_matches_the_text_log(tmp_path):
    scalars = tmp_path / 'scalars.json'
    lines = [
        dict(lr=1e-3, loss=9.25, loss_cls=0.94, epoch=1, iter=5, step=5),
        dict(lr=1e-3, loss=8.0, loss_cls=0.8, epoch=1, iter=10, step=10),
        {
            'coco/bbox_mAP': 0.13,
            'data_time': 0.0055,
            'step': 1
        },
        dict(lr=1e-3, loss=7.0, loss_cls=0.7, epoch=2, iter=15, step=15),
        {
            'coco/bbox_mAP': 0.15,
            'data_time': 0.0055,
            'step': 2
        },
    ]
    scalars.write_text('\n'.join(json.dumps(x) for x in lines) + '\n')
    log = tmp_path / 'run.log'
    write_log(log, EPOCH_LOG)
    from_json, from_text = load_run(str(scalars)), load_run(str(log))
    for key, mode in [('loss', 'train'), ('loss_cls', 'train'),
                      ('coco/bbox_mAP', 'val')]:
        assert series(from_json, key, mode) == series(from_text, key, mode)
    assert [r['epoch'] for r in from_json if r['mode'] == 'val'] == [1, 2]


def test_resumed_work_dir_keeps_the_last_value_of_a_step(tmp_path):
    for stamp, entries in [
        ('20260101_000000', [(1, 3.0), (2, 2.0), (3, 1.5)]),
        ('20260101_010000', [(3, 1.4), (4, 1.0)]),  # resumed from iter 2
    ]:
        vis = tmp_path / stamp / 'vis_data'
        vis.mkdir(parents=True)
        (vis / 'scalars.json').write_text(''.join(
            json.dumps(dict(loss=v, iter=s, step=s)) + '\n'
            for s, v in entries))
    records = load_run(str(tmp_path))
    assert series(records, 'loss', 'train') == {1: 3.0, 2: 2.0, 3: 1.4, 4: 1.0}


def test_bad_paths_fail_with_what_to_pass(tmp_path):
    with pytest.raises(FileNotFoundError, match='scalars.json'):
        load_run(str(tmp_path))
    (tmp_path / 'x.txt').write_text('')
    with pytest.raises(ValueError, match='.log text log'):
        load_run(str(tmp_path / 'x.txt'))


def test_replace_marked_block(tmp_path):
    readme = tmp_path / 'README.md'
    readme.write_text('a\n<!-- m:start -->\nold\n<!-- m:end -->\nb\n')
    replace_marked_block(str(readme), 'm', 'new')
    assert readme.read_text() == ('a\n<!-- m:start -->\nnew\n<!-- m:end -->'
                                  '\nb\n')
    with pytest.raises(ValueError, match='<!-- q:start -->'):
        replace_marked_block(str(readme), 'q', 'new')
