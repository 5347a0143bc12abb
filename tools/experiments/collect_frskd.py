"""Collect the FRSKD Fashion-MNIST results into a JSON file and a table.

Reads the work dirs written by ``tools/experiments/frskd_fashion_mnist.sh``
(and ``frskd_fashion_mnist_demo.sh``): ``WORK/<run>/seed<N>/`` holding a
``done`` marker and ``<timestamp>/vis_data/scalars.json``. For each run
(``baseline``, ``frskd``) it reports the top-1 of the last validation and
the best one over training, as mean +- sample standard deviation over the
seeds, and the wall time of a seed; for FRSKD against the baseline the
paired differences of the final top-1 (same seed = same data order and
initialisation): their mean, 95 % t-interval and the per-seed wins
(``mmkd.utils.paired_stats``).

Usage::

    python tools/experiments/collect_frskd.py WORK \
        [--readme configs/frskd/README.md]
    python tools/experiments/collect_frskd.py \
        --from-results model_zoo/frskd/results.json \
        [--readme configs/frskd/README.md]

Writes ``WORK/results.json`` and ``WORK/results.md``; ``--from-results``
re-tabulates a ``results.json`` written before (the released one) instead.
With ``--readme`` the table replaces the block between
``<!-- frskd-fashion-mnist:start -->`` and ``<!-- frskd-fashion-mnist:end -->``
of the README.
"""
import argparse
import datetime
import glob
import json
import os
import os.path as osp
import statistics
from typing import Dict, Optional

from mmkd.utils.paired_stats import comparison_lines, format_mean_std
from mmkd.utils.training_logs import (load_run, replace_marked_block, series,
                                      timestamp_dirs)

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
    dirs = timestamp_dirs(seed_dir)
    if not dirs:
        return None
    history = list(series(load_run(seed_dir), METRIC, 'val').values())
    if not history:
        return None
    start = datetime.datetime.strptime(osp.basename(dirs[0]),
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
            format_mean_std([s['final'] for s in seeds]),
            format_mean_std([s['best'] for s in seeds]),
            f"{statistics.mean(s['minutes'] for s in seeds):.1f}",
        ]) + ' |')
    finals = {
        run: {
            k: s['final']
            for k, s in res['seeds'].items()
        }
        for run, res in results.items()
    }
    deltas = comparison_lines(
        finals,
        dict(baseline='baseline', frskd='FRSKD'),
        'baseline',
        metric='top-1')
    if deltas:
        lines += [''] + deltas
    return '\n'.join(lines) + '\n'


def update_readme(readme: str, text: str) -> None:
    replace_marked_block(readme, MARK, text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        'work', nargs='?', help='the work dir of the experiment script')
    parser.add_argument(
        '--from-results', help='a results.json written before, to re-tabulate')
    parser.add_argument('--readme', help='README whose table to replace')
    args = parser.parse_args(argv)
    if (args.work is None) == (args.from_results is None):
        parser.error('pass either WORK or --from-results')
    if args.from_results:
        with open(args.from_results) as f:
            results = json.load(f)
    else:
        results = collect(args.work)
    text = table(results)
    if args.work:
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
