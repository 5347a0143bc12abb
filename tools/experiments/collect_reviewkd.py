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
and ``<!-- reviewkd-<experiment>:end -->`` of the README. ``--from-results
model_zoo/reviewkd/results_<experiment>.json`` re-tabulates a results file
written before (the released one) instead of reading work dirs;
``--merge-results`` that file adds the work dir's runs and seeds to it (new
seeds of a released experiment, or a new arm).

For every distilled student against the baseline the table gives the paired
differences of the final metric (same seed = same data order and student
initialisation): their mean, 95 % t-interval and the per-seed wins
(``mmkd.utils.paired_stats``).
"""
import argparse
import datetime
import glob
import json
import os
import os.path as osp
import statistics
from typing import Dict, List, Optional

from mmkd.utils.paired_stats import comparison_lines, format_mean_std
from mmkd.utils.training_logs import (load_run, replace_marked_block,
                                      timestamp_dirs)

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
            ('reviewkd_resnet56-resnet20_bf16',
             'ResNet-20 + ReviewKD, bf16 autocast (`--amp`)'),
        ],
        baseline='baseline_resnet20',
        # (arm, reference): a paired difference besides the one against the
        # baseline; here what training in bf16 changes at equal settings.
        pairs=[('reviewkd_resnet56-resnet20_bf16',
                'reviewkd_resnet56-resnet20')]),
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


def read_seed(seed_dir: str, metric: str, extra: List[str]) -> Optional[Dict]:
    """Validation history and wall time of one finished seed, or None.

    A finished detection run whose validations never produced a box (mmdet's
    CocoMetric then logs no metric) counts as mAP 0.
    """
    if not osp.isfile(osp.join(seed_dir, 'done')):
        return None
    dirs = timestamp_dirs(seed_dir)
    if not dirs:
        return None
    history = [
        r for r in load_run(seed_dir) if r['mode'] == 'val' and metric in r
    ]
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
            format_mean_std([s['final'] for s in seeds], scale),
            format_mean_std([s['best'] for s in seeds], scale)
        ]
        for key, _ in extra:
            row.append(
                format_mean_std([s[f'final:{key}'] for s in seeds], scale))
        row.append(f"{statistics.mean(s['minutes'] for s in seeds):.1f}")
        lines.append('| ' + ' | '.join(row) + ' |')
    lines += [''] + _deltas(spec, results) + _pair_lines(spec, results)
    return '\n'.join(lines).rstrip('\n') + '\n'


def _deltas(spec: Dict, results: Dict) -> List[str]:
    """One line per distilled student: the paired differences of its final
    metric against the baseline of the same seed."""
    runs = [r for r, _ in spec['runs']]
    students = runs[runs.index(spec['baseline']):]  # baseline, distilled...
    finals = {
        run: {
            k: s['final']
            for k, s in results.get(run, {}).get('seeds', {}).items()
        }
        for run in students
    }
    labels = dict(spec['runs'], **{spec['baseline']: 'baseline'})
    return comparison_lines(finals, labels, spec['baseline'],
                            spec['metric_name'], spec['scale'])


def _pair_lines(spec: Dict, results: Dict) -> List[str]:
    """The paired differences of ``spec['pairs']`` (arm - reference)."""
    labels = dict(spec['runs'])
    lines = []
    for arm, ref in spec.get('pairs', []):
        finals = {
            run: {
                k: s['final']
                for k, s in results.get(run, {}).get('seeds', {}).items()
            }
            for run in (ref, arm)
        }
        lines += comparison_lines(finals, {
            ref: labels[ref],
            arm: labels[arm]
        }, ref, spec['metric_name'], spec['scale'], reference=labels[ref])
    return lines


def merge(released: Dict, new: Dict) -> Dict:
    """``released`` (a results.json) with the runs of ``new`` that have
    seeds added: a seed of ``new`` replaces the released seed of that name."""
    out = {run: dict(res, seeds=dict(res['seeds']))
           for run, res in released.items()}
    for run, res in new.items():
        if res['seeds']:
            out.setdefault(run, dict(label=res['label'], seeds={}))
            out[run]['label'] = res['label']
            out[run]['seeds'].update(res['seeds'])
    return out


def update_readme(readme: str, experiment: str, text: str) -> None:
    replace_marked_block(readme, f'reviewkd-{experiment}', text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('experiment', choices=sorted(EXPERIMENTS))
    parser.add_argument(
        'work', nargs='?', help='the work dir of the experiment script')
    parser.add_argument(
        '--from-results', help='a results.json written before, to re-tabulate')
    parser.add_argument(
        '--merge-results',
        help='a results.json written before (the released one): the runs '
        'and seeds of WORK are added to it (same seed name: WORK wins)')
    parser.add_argument('--readme', help='README whose table to replace')
    args = parser.parse_args(argv)
    if (args.work is None) == (args.from_results is None):
        parser.error('pass either WORK or --from-results')
    if args.from_results:
        with open(args.from_results) as f:
            results = json.load(f)
    else:
        results = collect(args.experiment, args.work)
        if args.merge_results:
            with open(args.merge_results) as f:
                results = merge(json.load(f), results)
    text = table(args.experiment, results)
    if args.work:
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
