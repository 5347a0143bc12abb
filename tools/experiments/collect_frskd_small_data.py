"""Results of tools/experiments/frskd_small_data.sh (FRSKD's small-data
protocol on Fashion-MNIST, configs/frskd/README.md).

A run lives in ``<WORK>/<run>/seed<N>/``: MMEngine's training logs (the
validation top-1 on 2,000 held-out training images every 5 epochs), and
``test.json`` / ``fit.json``, the final checkpoint's top-1 on the 10,000 test
images and on its own 1,000 training images (``tools/test.py --out``).

    python tools/experiments/collect_frskd_small_data.py WORK [--readme F]
    python tools/experiments/collect_frskd_small_data.py WORK --best RUN...

``--best`` prints the run (of those named, seed 100) with the highest
final validation top-1: the selection step, which never reads test.json.
"""
import argparse
import glob
import json
import os.path as osp
import sys
from typing import Dict, Optional

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))))
from mmkd.utils.paired_stats import (comparison_lines,  # noqa: E402
                                     format_mean_std, paired_comparison,
                                     seed_key)
from mmkd.utils.training_logs import (load_run, replace_marked_block,  # noqa
                                      series)

METRIC = 'accuracy/top1'
ARMS = dict(baseline='ResNet-14 (CE)', frskd='ResNet-14 + FRSKD')


def final_val(seed_dir: str) -> Optional[float]:
    """The validation top-1 of the last validation of a finished run."""
    if not osp.isfile(osp.join(seed_dir, 'done')):
        return None
    values = series(load_run(seed_dir), METRIC, 'val')
    return values[max(values)] if values else None


def json_metric(path: str) -> Optional[float]:
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return float(json.load(f)[METRIC])


def collect_run(run_dir: str) -> Dict[str, Dict[str, float]]:
    """``{'val'|'test'|'fit': {seed: top-1}}`` of a run's finished seeds."""
    out = dict(val={}, test={}, fit={})
    for seed_dir in sorted(glob.glob(osp.join(run_dir, 'seed*')),
                           key=lambda d: seed_key(osp.basename(d))):
        if not osp.isdir(seed_dir):
            continue
        seed = osp.basename(seed_dir)
        for key, value in (
                ('val', final_val(seed_dir)),
                ('test', json_metric(osp.join(seed_dir, 'test.json'))),
                ('fit', json_metric(osp.join(seed_dir, 'fit.json')))):
            if value is not None:
                out[key][seed] = value
    return out


def best_run(work: str, runs) -> str:
    scores = {}
    for run in runs:
        vals = collect_run(osp.join(work, run))['val']
        if vals:
            scores[run] = sum(vals.values()) / len(vals)
    if not scores:
        raise SystemExit(f'no finished selection run among {list(runs)}')
    return max(scores, key=scores.get)


def table(work: str, selected: str = '') -> str:
    results = {arm: collect_run(osp.join(work, arm)) for arm in ARMS}
    lines = []
    if selected:
        lines += [f'Selected on the validation split: {selected}.', '']
    lines += [
        '| run | seeds | test top-1 (%) | validation top-1 (%) | '
        'training-subset top-1 (%) |', '| --- | :-: | :-: | :-: | :-: |'
    ]
    for arm, label in ARMS.items():
        r = results[arm]
        lines.append(
            f"| {label} | {len(r['test'])} | {format_mean_std(list(r['test'].values()))} | "  # noqa: E501
            f"{format_mean_std(list(r['val'].values()))} | "
            f"{format_mean_std(list(r['fit'].values()))} |")
    lines.append('')
    for split, name in (('test', 'test top-1 (%)'),
                        ('val', 'validation top-1 (%)')):
        arms = {arm: results[arm][split] for arm in ARMS}
        lines += comparison_lines(arms, ARMS, 'baseline', name)
    per_seed = []
    for seed in sorted(results['baseline']['test'], key=seed_key):
        if seed in results['frskd']['test']:
            b, f = results['baseline']['test'][seed], results['frskd'][
                'test'][seed]
            per_seed.append(f'{seed}: {b:.2f} -> {f:.2f} ({f - b:+.2f})')
    if per_seed:
        lines += ['', 'Per seed (test top-1, baseline -> FRSKD): ' +
                  '; '.join(per_seed) + '.']
    selection = sorted(
        d for d in glob.glob(osp.join(work, 'select_*')) if osp.isdir(d))
    if selection:
        lines += ['', 'Selection runs (seed 100, validation top-1 (%)): ' +
                  '; '.join(
                      f'{osp.basename(d)[len("select_"):]} '
                      f'{format_mean_std(list(collect_run(d)["val"].values()))}'  # noqa: E501
                      for d in selection) + '.']
    return '\n'.join(lines) + '\n'


def results_json(work: str, selected: str = '') -> dict:
    """Per arm and split the top-1 per seed, and the paired comparison of
    the test top-1 (what the demo prints beside its own run)."""
    runs = {arm: collect_run(osp.join(work, arm)) for arm in ARMS}
    out = dict(selected=selected, runs=runs)
    if runs['baseline']['test'] and runs['frskd']['test']:
        out['test_comparison'] = paired_comparison(
            runs['frskd']['test'], runs['baseline']['test'], unpaired='drop')
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work')
    parser.add_argument('--best', nargs='+', help='selection: print the '
                        'run with the best final validation top-1')
    parser.add_argument('--selected', default='',
                        help='the selected settings, for the table')
    parser.add_argument('--readme', help='write the table between the '
                        'frskd-small-data markers of this file')
    args = parser.parse_args()
    if args.best:
        print(best_run(args.work, args.best))
        return
    text = table(args.work, args.selected)
    print(text)
    with open(osp.join(args.work, 'results.md'), 'w') as f:
        f.write(text)
    with open(osp.join(args.work, 'results.json'), 'w') as f:
        json.dump(results_json(args.work, args.selected), f, indent=1)
    if args.readme:
        replace_marked_block(args.readme, 'frskd-small-data', text)


if __name__ == '__main__':
    main()
