"""Collect the SKD nuclei runs of tools/experiments/skd_nuclei.sh into a table.

Reads ``WORK_DIR/teacher`` and ``WORK_DIR/<variant>/seed<k>`` (the mIoU
that mmseg's IoUMetric logged at the end of training, in the run's
``vis_data/scalars.json``), writes ``WORK_DIR/results.json`` and
``WORK_DIR/results.md`` and, with ``--readme``, replaces the block between
``<!-- skd-nuclei:start -->`` and ``<!-- skd-nuclei:end -->`` of that file.

For every distilled variant against the baseline it adds the paired
differences of the mIoU (same seed = same data order and student
initialisation): their mean, 95 % t-interval and the per-seed wins
(``mmkd.utils.paired_stats``). ``--from-results results.json`` re-tabulates
a results file written before (``model_zoo/skd/results.json``) instead of
reading WORK_DIR.

Usage:
    python tools/experiments/collect_skd_nuclei.py WORK_DIR [--readme README]
    python tools/experiments/collect_skd_nuclei.py \
        --from-results model_zoo/skd/results.json [--readme README]
"""
import argparse
import glob
import json
import os.path as osp
import statistics
from typing import Dict, Optional

from mmkd.utils.paired_stats import (comparison_lines, format_mean_std,
                                     seed_key)
from mmkd.utils.training_logs import (load_run, replace_marked_block,
                                      timestamp_dirs)

VARIANTS = [
    ('baseline', 'PSPNet-R18 baseline'),
    ('pi', '+ pixel-wise (Pi)'),
    ('pi-pa', '+ Pi + pair-wise (Pa)'),
    ('all', '+ Pi + Pa + holistic (Ho)'),
]
SHORT = {
    'baseline': 'baseline',
    'pi': 'PSPNet-R18 + Pi',
    'pi-pa': 'PSPNet-R18 + Pi + Pa',
    'all': 'PSPNet-R18 + Pi + Pa + Ho',
}
MARK = 'skd-nuclei'


def read_run(work_dir: str) -> Optional[Dict]:
    """Final validation metrics and timing of one run, None if missing."""
    if not timestamp_dirs(work_dir):
        return None
    records = load_run(work_dir)
    evals = [r for r in records if r['mode'] == 'val' and 'mIoU' in r]
    if not evals:
        return None
    train = [r for r in records if r['mode'] == 'train' and 'time' in r]
    out = dict(
        mIoU=evals[-1]['mIoU'],
        aAcc=evals[-1].get('aAcc'),
        mAcc=evals[-1].get('mAcc'),
        iters=max((r.get('iter', r['step']) for r in train), default=None),
        sec_per_iter=statistics.median(r['time']
                                       for r in train) if train else None)
    done = osp.join(work_dir, 'done')
    if osp.isfile(done):
        with open(done) as f:
            text = f.read().strip()
        if text.isdigit():  # the run's wall time, written by skd_nuclei.sh
            out['wall_seconds'] = int(text)
    return out


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
                   key=seed_key)
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
        row = [label, format_mean_std(values)] + [
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
    mious = {
        variant: {
            k: r['mIoU']
            for k, r in results['students'].get(variant, {}).items()
        }
        for variant, _ in VARIANTS
    }
    deltas = comparison_lines(mious, SHORT, 'baseline', 'mIoU (%)')
    if deltas:
        note += '\n' + '\n'.join(deltas) + '\n'
    return '\n'.join(lines) + '\n' + note


def update_readme(path: str, table: str) -> None:
    replace_marked_block(path, MARK, table)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('work_dir', nargs='?')
    parser.add_argument(
        '--from-results', help='a results.json written before, to re-tabulate')
    parser.add_argument(
        '--readme', help='README whose results block to '
        'replace')
    args = parser.parse_args(argv)
    if (args.work_dir is None) == (args.from_results is None):
        parser.error('pass either WORK_DIR or --from-results')
    if args.from_results:
        with open(args.from_results) as f:
            results = json.load(f)
    else:
        results = collect(args.work_dir)
    table = markdown(results)
    if args.work_dir:
        with open(osp.join(args.work_dir, 'results.json'), 'w') as f:
            json.dump(results, f, indent=2)
        with open(osp.join(args.work_dir, 'results.md'), 'w') as f:
            f.write(table)
    if args.readme:
        update_readme(args.readme, table)
    print(table)


if __name__ == '__main__':
    main()
