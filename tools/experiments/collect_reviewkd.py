"""Collect the ReviewKD experiment results into a JSON file and a table.

Reads the work dirs written by ``tools/experiments/reviewkd_*.sh``
(``WORK/<run>/seed<N>/<timestamp>/vis_data/scalars.json``), and for every run
reports the metric of the last validation and the best one over training,
as mean +- standard deviation over the seeds, plus the wall time of a seed.

Usage::

    python tools/experiments/collect_reviewkd.py fashion-mnist \
        work_dirs/reviewkd_fashion_mnist [--readme configs/reviewkd/README.md]
    python tools/experiments/collect_reviewkd.py deepforest \
        work_dirs/reviewkd_deepforest [--readme configs/reviewkd/README.md]

Writes ``WORK/results.json`` and ``WORK/results.md``; with ``--readme`` the
table also replaces the block between ``<!-- reviewkd-<experiment>:start -->``
and ``<!-- reviewkd-<experiment>:end -->`` of the README.
"""
import argparse
import datetime
import glob
import json
import os
import os.path as osp
import re
import statistics
from typing import Dict, List, Optional

EXPERIMENTS = {
    'fashion-mnist':
    dict(
        metric='accuracy/top1',
        metric_name='top-1 (%)',
        scale=1.0,
        runs=[
            ('teacher_resnet56', 'ResNet-56 (teacher, 3 epochs)'),
            ('baseline_resnet20', 'ResNet-20 (student baseline, 1 epoch)'),
            ('reviewkd_resnet56-resnet20', 'ResNet-20 + ReviewKD'),
            ('kd_resnet56-resnet20', 'ResNet-20 + KD (T=4)'),
        ],
        baseline='baseline_resnet20'),
    'deepforest':
    dict(
        metric='coco/bbox_mAP',
        metric_name='bbox mAP (%)',
        extra=[('coco/bbox_mAP_50', 'mAP@50 (%)')],
        scale=100.0,
        runs=[
            ('teacher_r50', 'FCOS R-50/2 (teacher, 200 epochs)'),
            ('baseline_r18', 'FCOS R-18/2 (student baseline, 100 epochs)'),
            ('reviewkd_r50-r18', 'FCOS R-18/2 + ReviewKD'),
        ],
        baseline='baseline_r18'),
}


def _timestamp_dirs(seed_dir: str) -> List[str]:
    dirs = [
        d for d in glob.glob(osp.join(seed_dir, '*'))
        if osp.isfile(osp.join(d, 'vis_data', 'scalars.json'))
    ]
    return sorted(dirs)


def read_seed(seed_dir: str, metric: str, extra: List[str]) -> Optional[Dict]:
    """Validation history and wall time of one finished seed, or None.

    A finished detection run whose validations never produced a box (mmdet's
    CocoMetric then logs no metric) counts as mAP 0.
    """
    if not osp.isfile(osp.join(seed_dir, 'done')):
        return None
    history = []
    dirs = _timestamp_dirs(seed_dir)
    for d in dirs:  # a resumed run continues in a new timestamp dir
        with open(osp.join(d, 'vis_data', 'scalars.json')) as f:
            for line in f:
                entry = json.loads(line)
                if metric in entry:
                    history.append(entry)
    if not dirs:
        return None
    if not history:  # finished, but no detection above the score threshold
        history = [{metric: 0.0, **{k: 0.0 for k in extra}}]
    start = datetime.datetime.strptime(osp.basename(dirs[0]),
                                       '%Y%m%d_%H%M%S').timestamp()
    end = os.path.getmtime(osp.join(seed_dir, 'done'))
    out = dict(
        final=history[-1][metric],
        best=max(h[metric] for h in history),
        history=[h[metric] for h in history],
        minutes=(end - start) / 60)
    for key in extra:
        out[f'final:{key}'] = history[-1].get(key)
    return out


def _mean_std(values: List[float], scale: float) -> str:
    values = [v * scale for v in values]
    if len(values) == 1:
        return f'{values[0]:.2f}'
    return f'{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}'


def collect(experiment: str, work: str) -> Dict:
    spec = EXPERIMENTS[experiment]
    extra = [k for k, _ in spec.get('extra', [])]
    results = {}
    for run, label in spec['runs']:
        seeds = {}
        for seed_dir in sorted(glob.glob(osp.join(work, run, 'seed*'))):
            res = read_seed(seed_dir, spec['metric'], extra)
            if res is not None:
                seeds[osp.basename(seed_dir)] = res
        results[run] = dict(label=label, seeds=seeds)
    return results


def table(experiment: str, results: Dict) -> str:
    spec = EXPERIMENTS[experiment]
    scale = spec['scale']
    name = spec['metric_name']
    extra = spec.get('extra', [])
    head = ['run', 'seeds', f'final {name}', f'best {name}']
    head += [f'final {n}' for _, n in extra]
    head += ['minutes / seed']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for run, res in results.items():
        seeds = list(res['seeds'].values())
        if not seeds:
            lines.append(f"| {res['label']} | 0 |" + ' – |' * (len(head) - 2))
            continue
        row = [
            res['label'],
            str(len(seeds)),
            _mean_std([s['final'] for s in seeds], scale),
            _mean_std([s['best'] for s in seeds], scale)
        ]
        for key, _ in extra:
            row.append(_mean_std([s[f'final:{key}'] for s in seeds], scale))
        row.append(f"{statistics.mean(s['minutes'] for s in seeds):.1f}")
        lines.append('| ' + ' | '.join(row) + ' |')
    lines += [''] + _deltas(spec, results)
    return '\n'.join(lines).rstrip('\n') + '\n'


def _deltas(spec: Dict, results: Dict) -> List[str]:
    """One line per distilled student: its mean final metric minus the
    baseline's, and on how many seeds it beats the baseline of that seed."""
    base = results.get(spec['baseline'], {}).get('seeds', {})
    if not base:
        return []
    scale = spec['scale']
    base_mean = statistics.mean(s['final'] for s in base.values()) * scale
    runs = [r for r, _ in spec['runs']]
    lines = []
    for run in runs[runs.index(spec['baseline']) + 1:]:
        seeds = results[run]['seeds']
        if not seeds:
            continue
        mean = statistics.mean(s['final'] for s in seeds.values()) * scale
        paired = [k for k in seeds if k in base]
        wins = sum(seeds[k]['final'] > base[k]['final'] for k in paired)
        lines.append(f"- {results[run]['label']} - baseline (mean final "
                     f"{spec['metric_name']}): {mean - base_mean:+.2f}; "
                     f'better than the baseline of the same seed on {wins} '
                     f'of {len(paired)} seeds')
    return lines


def update_readme(readme: str, experiment: str, text: str) -> None:
    start = f'<!-- reviewkd-{experiment}:start -->'
    end = f'<!-- reviewkd-{experiment}:end -->'
    with open(readme) as f:
        content = f.read()
    pattern = re.compile(re.escape(start) + '.*?' + re.escape(end), re.S)
    if not pattern.search(content):
        raise ValueError(f'{readme} has no {start} ... {end} block')
    content = pattern.sub(lambda _: f'{start}\n{text}{end}', content)
    with open(readme, 'w') as f:
        f.write(content)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('experiment', choices=sorted(EXPERIMENTS))
    parser.add_argument('work', help='the work dir of the experiment script')
    parser.add_argument('--readme', help='README whose table to replace')
    args = parser.parse_args()
    results = collect(args.experiment, args.work)
    text = table(args.experiment, results)
    with open(osp.join(args.work, 'results.json'), 'w') as f:
        json.dump(results, f, indent=2)
    with open(osp.join(args.work, 'results.md'), 'w') as f:
        f.write(text)
    print(text)
    if args.readme:
        update_readme(args.readme, args.experiment, text)
        print(f'updated {args.readme}')


if __name__ == '__main__':
    main()
