"""Read the scalars MMEngine logs during training, from either of its files.

* ``<work_dir>/<timestamp>/vis_data/scalars.json``: one JSON object a line,
  written by ``LoggerHook`` (``step`` = the iteration of a training record,
  the epoch or iteration of a validation record);
* ``<work_dir>/<timestamp>/<timestamp>.log``: the text log, lines such as
  ``Epoch(train) [1][ 50/469]  lr: 1.0e-01  ...  loss: 1.5695`` or
  ``Iter(val) [4/4]  aAcc: 95.56  mIoU: 88.96``.

Both give the same records: dicts of the logged numbers plus ``mode``
(``'train'`` or ``'val'``) and ``step`` (a training record's global
iteration; a validation record's epoch for epoch-based loops, else its
iteration), ``epoch`` where the loop is epoch-based, and ``time_s`` (seconds
since the epoch of the log line's clock) for text logs.
"""
import datetime
import glob
import json
import os.path as osp
import re
from typing import Dict, List, Optional

#: Short names of the task libraries' metrics, for tables and plots.
METRIC_NAMES = {'accuracy/top1': 'top-1', 'mIoU': 'mIoU',
                'coco/bbox_mAP': 'box AP', 'coco/bbox_mAP_50': 'box AP50'}
#: Metrics logged as fractions, shown in %.
METRIC_SCALES = {'coco/bbox_mAP': 100.0, 'coco/bbox_mAP_50': 100.0}
#: The text log rounds a metric to 4 decimals (scalars.json does not).
TEXT_LOG_ROUNDING = 0.5e-4

_LINE = re.compile(r'^(?P<stamp>(?:\d{4}/)?\d{2}/\d{2} \d{2}:\d{2}:\d{2}) - '
                   r'\S+ - \w+ - (?P<loop>Epoch|Iter)\((?P<mode>train|val)\)'
                   r'\s*(?:\[\s*(?P<epoch>\d+)\])?\[\s*(?P<cur>\d+)/'
                   r'(?P<total>\d+)\]\s+(?P<rest>.*)$')
_PAIR = re.compile(r'(\S+):\s+(\S+)')
_NUMBER = re.compile(r'^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^nan$|^inf$')


def _stamp_seconds(stamp: str) -> float:
    fmt = '%Y/%m/%d %H:%M:%S' if stamp.count('/') == 2 else '%m/%d %H:%M:%S'
    if fmt.startswith('%m'):  # MMEngine's default clock has no year
        stamp = '2000/' + stamp
        fmt = '%Y/' + fmt
    return datetime.datetime.strptime(stamp, fmt).timestamp()


def parse_text_log(path: str) -> List[Dict]:
    """Training and validation records of an MMEngine text log.

    Validation progress lines (they carry ``eta``) are skipped, so a
    validation record is the epoch's metrics line.
    """
    records = []
    last_iter = 0
    with open(path, errors='replace') as f:
        for line in f:
            m = _LINE.match(line.strip())
            if m is None:
                continue
            values = {}
            for key, value in _PAIR.findall(m['rest']):
                if _NUMBER.match(value):
                    values[key] = float(value)
                elif key == 'eta':
                    values[key] = value
            if m['mode'] == 'train':
                cur, total = int(m['cur']), int(m['total'])
                if m['loop'] == 'Epoch':
                    epoch = int(m['epoch'])
                    step = (epoch - 1) * total + cur
                    values.update(epoch=epoch, iter=step)
                else:
                    step = cur
                    values['iter'] = step
                last_iter = step
            else:
                if 'eta' in values:
                    continue
                if m['loop'] == 'Epoch' and m['epoch'] is not None:
                    step = int(m['epoch'])
                    values['epoch'] = step
                else:
                    step = last_iter
            values.pop('eta', None)
            values.update(
                mode=m['mode'], step=step, time_s=_stamp_seconds(m['stamp']))
            records.append(values)
    return records


def parse_scalars(path: str) -> List[Dict]:
    """Records of a ``vis_data/scalars.json``: a training record is one
    with ``iter`` or ``epoch`` or a loss, any other is a validation one."""
    records = []
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            rec = json.loads(line)
            rec.setdefault('step', 0)
            train = 'iter' in rec or 'epoch' in rec or any('loss' in k
                                                           for k in rec)
            rec['mode'] = 'train' if train else 'val'
            records.append(rec)
    # an epoch-based loop's validation step is its epoch
    if any('epoch' in r for r in records if r['mode'] == 'train'):
        for r in records:
            if r['mode'] == 'val':
                r.setdefault('epoch', r['step'])
    return records


def _dedupe(records: List[Dict]) -> List[Dict]:
    """A resumed run repeats the steps after its last checkpoint: keep the
    last record of every (mode, step), in step order per mode."""
    last = {}
    for r in records:
        last[(r['mode'], r['step'])] = r
    return sorted(
        last.values(), key=lambda r: (r['mode'] != 'train', r['step']))


def timestamp_dirs(work_dir: str) -> List[str]:
    """The ``<timestamp>`` dirs (MMEngine's ``%Y%m%d_%H%M%S``) of a work
    dir that hold a log, oldest first (a resumed run continues in a new
    one)."""
    dirs = [
        d for d in glob.glob(osp.join(work_dir, '*'))
        if osp.isdir(d) and re.fullmatch(r'\d{8}_\d{6}', osp.basename(d)) and
        (osp.isfile(osp.join(d, 'vis_data', 'scalars.json')) or text_log(d))
    ]
    return sorted(dirs)


def text_log(timestamp_dir: str) -> Optional[str]:
    """The text log MMEngine writes into a ``<timestamp>`` dir
    (``<timestamp>.log``; the last by name if there are several), or None.
    """
    logs = sorted(glob.glob(osp.join(timestamp_dir, '*.log')))
    return logs[-1] if logs else None


def load_run(path: str) -> List[Dict]:
    """Records of one run: a ``.log`` text log, a ``scalars.json``, or a
    work dir (its timestamp dirs in order, ``scalars.json`` preferred over
    the text log); repeated steps of a resumed run keep their last value.
    """
    if osp.isdir(path):
        records = []
        for d in timestamp_dirs(path):
            scalars = osp.join(d, 'vis_data', 'scalars.json')
            if osp.isfile(scalars):
                records += parse_scalars(scalars)
            else:
                records += parse_text_log(text_log(d))
        if not records and not timestamp_dirs(path):
            raise FileNotFoundError(
                f'{path} holds no <timestamp>/vis_data/scalars.json and no '
                '<timestamp>/*.log: pass a work dir of a run, a scalars.json '
                'or a .log file')
    elif path.endswith('.json'):
        records = parse_scalars(path)
    elif path.endswith('.log'):
        records = parse_text_log(path)
    else:
        raise ValueError(f'{path}: expected a .log text log, a scalars.json '
                         'or a work dir')
    return _dedupe(records)


def series(records: List[Dict], key: str, mode: str) -> Dict[int, float]:
    """``{step: value}`` of ``key`` over the records of ``mode``."""
    return {
        r['step']: r[key]
        for r in records if r['mode'] == mode and key in r
    }


def wall_minutes(records: List[Dict]) -> Optional[float]:
    """Minutes from the first to the last training or validation line of a
    text log (None for scalars.json records)."""
    times = [r['time_s'] for r in records if 'time_s' in r]
    return (max(times) - min(times)) / 60 if times else None


def replace_marked_block(path: str, mark: str, text: str) -> None:
    """Replace what lies between ``<!-- mark:start -->`` and
    ``<!-- mark:end -->`` of the file ``path`` by ``text``."""
    start, end = f'<!-- {mark}:start -->', f'<!-- {mark}:end -->'
    with open(path) as f:
        content = f.read()
    pattern = re.compile(re.escape(start) + '.*?' + re.escape(end), re.S)
    if not pattern.search(content):
        raise ValueError(f'{path} has no {start} ... {end} block: add the '
                         'two lines where the text belongs')
    if not text.endswith('\n'):
        text += '\n'
    content = pattern.sub(lambda _: f'{start}\n{text}{end}', content, count=1)
    with open(path, 'w') as f:
        f.write(content)
