"""Collect the FRSKD Fashion-MNIST results into a JSON file and a table.

Reads the work dirs written by ``tools/experiments/frskd_fashion_mnist.sh``
(and ``frskd_fashion_mnist_demo.sh``): ``WORK/<run>/seed<N>/`` holding a
``done`` marker and ``<timestamp>/vis_data/scalars.json``. For each run
(``baseline``, ``frskd``) it reports the top-1 of the last validation and
the best one over training, as mean +- sample standard deviation over the
seeds, the FRSKD - baseline difference of the means, and the wall time of a
seed.

Usage::

    python tools/experiments/collect_frskd.py WORK \
        [--readme configs/frskd/README.md]

Writes ``WORK/results.json`` and ``WORK/results.md``; with ``--readme`` the
table replaces the block between ``<!-- frskd-fashion-mnist:start -->`` and
``<!-- frskd-fashion-mnist:end -->`` of the README.
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

METRIC = 'accuracy/top1'
RUNS = [
    ('baseline', 'ResNet-14 (CE only)'),
    ('frskd', 'ResNet-14 + FRSKD'),
]
MARK = 'frskd-fashion-mnist'


def read_seed(seed_dir: str) -> Optional[Dict]:
    """Top-1 history and wall time of a finished seed, or None."""
    if not osp.isfile(osp.join(seed_dir, 'done')):
        return None
    logs = sorted(
        d for d in glob.glob(osp.join(seed_dir, '*'))
        if osp.isfile(osp.join(d, 'vis_data', 'scalars.json')))
    history = []
    for d in logs:  # a resumed run continues in a new timestamp dir
        with open(osp.join(d, 'vis_data', 'scalars.json')) as f:
            entries = [json.loads(line) for line in f if line.strip()]
        history += [e[METRIC] for e in entries if METRIC in e]
    if not history:
        return None
    start = datetime.datetime.strptime(osp.basename(logs[0]),
                                       '%Y%m%d_%H%M%S').timestamp()
    end = os.path.getmtime(osp.join(seed_dir, 'done'))
    return dict(
        final=history[-1],
        best=max(history),
        history=history,
        minutes=(end - start) / 60)


def collect(work: str) -> Dict:
    results = {}
    for run, label in RUNS:
        seeds = {}
        for seed_dir in sorted(glob.glob(osp.join(work, run, 'seed*'))):
            res = read_seed(seed_dir)
            if res is not None:
                seeds[osp.basename(seed_dir)] = res
        results[run] = dict(label=label, seeds=seeds)
    return results


def _mean_std(values: List[float]) -> str:
    if len(values) == 1:
        return f'{values[0]:.2f}'
    return f'{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}'


def table(results: Dict) -> str:
    lines = [
        '| run | seeds | final top-1 (%) | best top-1 (%) | minutes / seed |',
        '|---|---|---|---|---|'
    ]
    for res in results.values():
        seeds = list(res['seeds'].values())
        if not seeds:
            lines.append(f"| {res['label']} | 0 | – | – | – |")
            continue
        lines.append('| ' + ' | '.join([
            res['label'],
            str(len(seeds)),
            _mean_std([s['final'] for s in seeds]),
            _mean_std([s['best'] for s in seeds]),
            f"{statistics.mean(s['minutes'] for s in seeds):.1f}",
        ]) + ' |')
    base, frskd = (
        list(results[r]['seeds'].values()) for r in ('baseline', 'frskd'))
    if base and frskd:
        delta = statistics.mean(s['final'] for s in frskd) - \
            statistics.mean(s['final'] for s in base)
        lines.append('')
        lines.append(f'FRSKD - baseline (mean final top-1): {delta:+.2f}')
    return '\n'.join(lines) + '\n'


def update_readme(readme: str, text: str) -> None:
    start, end = f'<!-- {MARK}:start -->', f'<!-- {MARK}:end -->'
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
    parser.add_argument('work', help='the work dir of the experiment script')
    parser.add_argument('--readme', help='README whose table to replace')
    args = parser.parse_args()
    results = collect(args.work)
    text = table(results)
    with open(osp.join(args.work, 'results.json'), 'w') as f:
        json.dump(results, f, indent=2)
    with open(osp.join(args.work, 'results.md'), 'w') as f:
        f.write(text)
    print(text)
    if args.readme:
        update_readme(args.readme, text)
        print(f'updated {args.readme}')


if __name__ == '__main__':
    main()
