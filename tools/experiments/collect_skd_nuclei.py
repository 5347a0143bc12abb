"""Collect the SKD nuclei runs of tools/experiments/skd_nuclei.sh into a table.

Reads ``WORK_DIR/teacher`` and ``WORK_DIR/<variant>/seed<k>`` (the mIoU
that mmseg's IoUMetric logged at the end of training, in the run's
``vis_data/scalars.json``), writes ``WORK_DIR/results.json`` and
``WORK_DIR/results.md`` and, with ``--readme``, replaces the block between
``<!-- skd-nuclei:start -->`` and ``<!-- skd-nuclei:end -->`` of that file.

Usage:
    python tools/experiments/collect_skd_nuclei.py WORK_DIR [--readme README]
"""
import argparse
import glob
import json
import os.path as osp
import re
import statistics
from typing import Dict, List, Optional

VARIANTS = [
    ('baseline', 'PSPNet-R18 baseline'),
    ('pi', '+ pixel-wise (Pi)'),
    ('pi-pa', '+ Pi + pair-wise (Pa)'),
    ('all', '+ Pi + Pa + holistic (Ho)'),
]
START, END = '<!-- skd-nuclei:start -->', '<!-- skd-nuclei:end -->'


def read_run(work_dir: str) -> Optional[Dict]:
    """Final validation metrics and timing of one run, None if missing."""
    logs = sorted(
        glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not logs:
        return None
    records = []
    with open(logs[-1]) as f:
        for line in f:
            line = line.strip()
            if line:
                records.append(json.loads(line))
    evals = [r for r in records if 'mIoU' in r]
    if not evals:
        return None
    train = [r for r in records if 'loss' in r and 'time' in r]
    out = dict(
        mIoU=evals[-1]['mIoU'],
        aAcc=evals[-1].get('aAcc'),
        mAcc=evals[-1].get('mAcc'),
        iters=max((r.get('iter', r.get('step', 0)) for r in train),
                  default=None),
        sec_per_iter=statistics.median(r['time']
                                       for r in train) if train else None)
    done = osp.join(work_dir, 'done')
    if osp.isfile(done):
        with open(done) as f:
            text = f.read().strip()
        if text.isdigit():  # the run's wall time, written by skd_nuclei.sh
            out['wall_seconds'] = int(text)
    return out


def mean_std(values: List[float]) -> str:
    if not values:
        return 'n/a'
    if len(values) == 1:
        return f'{values[0]:.2f}'
    return f'{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}'


def collect(work_dir: str) -> Dict:
    results = dict(
        teacher=read_run(osp.join(work_dir, 'teacher')), students={})
    for variant, _ in VARIANTS:
        runs = {}
        for seed_dir in sorted(
                glob.glob(osp.join(work_dir, variant, 'seed*'))):
            if not osp.isdir(seed_dir):
                continue
            run = read_run(seed_dir)
            if run is not None:
                runs[osp.basename(seed_dir)] = run
        results['students'][variant] = runs
    return results


def markdown(results: Dict) -> str:
    seeds = sorted({s
                    for runs in results['students'].values()
                    for s in runs},
                   key=lambda s: int(re.sub(r'\D', '', s) or 0))
    head = ['model', 'mIoU (mean ± std)'] + [f'{s}'
                                             for s in seeds] + ['s/iter']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    teacher = results['teacher']
    if teacher is not None:
        row = [
            'PSPNet-R34 teacher', f"{teacher['mIoU']:.2f}"
        ] + [''] * len(seeds) + [
            f"{teacher['sec_per_iter']:.2f}" if teacher['sec_per_iter'] else ''
        ]
        lines.append('| ' + ' | '.join(row) + ' |')
    for variant, label in VARIANTS:
        runs = results['students'].get(variant, {})
        values = [r['mIoU'] for r in runs.values()]
        times = [r['sec_per_iter'] for r in runs.values() if r['sec_per_iter']]
        row = [label, mean_std(values)] + [
            f"{runs[s]['mIoU']:.2f}" if s in runs else '' for s in seeds
        ] + [f'{statistics.mean(times):.2f}' if times else '']
        lines.append('| ' + ' | '.join(row) + ' |')
    iters = {
        r['iters']
        for runs in results['students'].values()
        for r in runs.values()
    }
    note = (f'\nStudents: {", ".join(str(i) for i in sorted(iters))} '
            'iterations each; ' if iters else '\n')
    if teacher is not None:
        note += f"teacher: {teacher['iters']} iterations. "
    note += ('mIoU (%) over background and nucleus on the 4 validation '
             'tiles, by mmseg\'s IoUMetric; s/iter: median training step '
             'time.\n')
    return '\n'.join(lines) + '\n' + note


def update_readme(path: str, table: str) -> None:
    with open(path) as f:
        text = f.read()
    if START not in text or END not in text:
        raise ValueError(f'{path} has no {START} ... {END} block')
    pre, rest = text.split(START, 1)
    _, post = rest.split(END, 1)
    with open(path, 'w') as f:
        f.write(pre + START + '\n' + table + END + post)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('work_dir')
    parser.add_argument(
        '--readme', help='README whose results block to '
        'replace')
    args = parser.parse_args(argv)
    results = collect(args.work_dir)
    table = markdown(results)
    with open(osp.join(args.work_dir, 'results.json'), 'w') as f:
        json.dump(results, f, indent=2)
    with open(osp.join(args.work_dir, 'results.md'), 'w') as f:
        f.write(table)
    if args.readme:
        update_readme(args.readme, table)
    print(table)


if __name__ == '__main__':
    main()
