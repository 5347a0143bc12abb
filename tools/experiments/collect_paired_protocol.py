"""Results of a paired protocol (FRSKD's small-data protocol,
configs/frskd/README.md, tools/experiments/frskd_small_data.sh; ReviewKD's
short-schedule protocol, configs/reviewkd/README.md,
tools/experiments/reviewkd_short_schedule.sh; the few-label protocol,
configs/kd/README.md, tools/experiments/few_label.sh).

A run lives in ``<WORK>/<arm>/seed<N>/`` while it is trained: MMEngine's
training logs (the validation top-1 on held-out training images), ``done``
once it finished, and ``test.json`` / ``fit.json``, the final checkpoint's
top-1 on the 10,000 test images and on its own training subset
(``tools/test.py --out``). A released protocol (``--release DIR``) keeps the
same facts flat: ``<DIR>/<arm>/seed<N>.log`` (the training log),
``seed<N>.test.json`` and ``seed<N>.fit.json``; the collector reads either.
The first ``--arm`` is the baseline; every other arm is compared with it seed
by seed.

    python tools/experiments/collect_paired_protocol.py WORK \
        --arm baseline 'ResNet-14 (CE)' --arm frskd 'ResNet-14 + FRSKD' \
        [--name FRSKD] [--selected TEXT] [--readme F --mark MARK]
    python tools/experiments/collect_paired_protocol.py WORK --best RUN...

``--best`` prints the run (of those named, seed 100) with the highest
final validation top-1: the selection step, which never reads test.json.
"""
import argparse
import glob
import json
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))))
from mmkd.utils.paired_stats import (comparison_lines,  # noqa: E402
                                     format_mean_std, paired_comparison,
                                     seed_key)
from mmkd.utils.training_logs import (load_run, replace_marked_block,  # noqa
                                      series)

METRIC = 'accuracy/top1'
Arms = List[Tuple[str, str]]  # (work-dir name, label); the first: baseline


def final_val(run: str) -> Optional[float]:
    """The validation top-1 of the last validation of a finished run (a
    work dir with ``done``, or a released training log)."""
    if osp.isdir(run) and not osp.isfile(osp.join(run, 'done')):
        return None
    values = series(load_run(run), METRIC, 'val')
    return values[max(values)] if values else None


def json_metric(path: str) -> Optional[float]:
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return float(json.load(f)[METRIC])


def seed_files(run_dir: str) -> Dict[str, Tuple[str, str, str]]:
    """``{seed: (training run, test json, fit json)}``: a work dir's
    ``seed<N>/`` or, where there is none, a released ``seed<N>.log``."""
    out = {}
    for path in glob.glob(osp.join(run_dir, 'seed*')):
        name = osp.basename(path)
        if osp.isdir(path):
            out[name] = (path, osp.join(path, 'test.json'),
                         osp.join(path, 'fit.json'))
    for path in glob.glob(osp.join(run_dir, 'seed*.log')):
        seed = osp.basename(path)[:-len('.log')]
        if seed not in out:
            stem = path[:-len('.log')]
            out[seed] = (path, f'{stem}.test.json', f'{stem}.fit.json')
    return out


def collect_run(run_dir: str) -> Dict[str, Dict[str, float]]:
    """``{'val'|'test'|'fit': {seed: top-1}}`` of a run's finished seeds."""
    out = dict(val={}, test={}, fit={})
    files = seed_files(run_dir)
    for seed in sorted(files, key=seed_key):
        run, test, fit = files[seed]
        for key, value in (('val', final_val(run)), ('test', json_metric(test)),
                           ('fit', json_metric(fit))):
            if value is not None:
                out[key][seed] = value
    return out


def release(work: str, runs, dest: str) -> None:
    """Copy the finished seeds of ``runs`` into the released layout."""
    import shutil
    for run in runs:
        files = seed_files(osp.join(work, run))
        for seed, (path, test, fit) in sorted(files.items()):
            if not osp.isdir(path) or not osp.isfile(osp.join(path, 'done')):
                continue
            logs = sorted(glob.glob(osp.join(path, '2*', '*.log')))
            if len(logs) != 1:
                raise SystemExit(f'{path}: {len(logs)} training logs; a '
                                 'resumed run has several, release them by '
                                 'hand')
            os.makedirs(osp.join(dest, run), exist_ok=True)
            shutil.copyfile(logs[0], osp.join(dest, run, f'{seed}.log'))
            for src, kind in ((test, 'test'), (fit, 'fit')):
                if osp.isfile(src):
                    shutil.copyfile(
                        src, osp.join(dest, run, f'{seed}.{kind}.json'))


def best_run(work: str, runs) -> str:
    scores = {}
    for run in runs:
        vals = collect_run(osp.join(work, run))['val']
        if vals:
            scores[run] = sum(vals.values()) / len(vals)
    if not scores:
        raise SystemExit(f'no finished selection run among {list(runs)}')
    return max(scores, key=scores.get)


def selection_run(run_dir: str) -> str:
    """``'<name> <mean ± std> (<seeds>)'`` of a selection run."""
    vals = collect_run(run_dir)['val']
    seeds = ', '.join(seed[len('seed'):] for seed in sorted(vals, key=seed_key))
    return (f'{osp.basename(run_dir)[len("select_"):]} '
            f'{format_mean_std(list(vals.values()))} ({seeds})')


def table(work: str, arms: Arms, name: str, selected: str = '') -> str:
    """The markdown block: one row per arm, the paired comparisons of the
    test and validation top-1, the per-seed test values, the selection
    runs."""
    labels = dict(arms)
    base, method = arms[0][0], arms[1][0]
    results = {arm: collect_run(osp.join(work, arm)) for arm in labels}
    lines = []
    if selected:
        lines += [f'Selected on the validation split: {selected}.', '']
    lines += [
        '| run | seeds | test top-1 (%) | validation top-1 (%) | '
        'training-subset top-1 (%) |', '| --- | :-: | :-: | :-: | :-: |'
    ]
    for arm, label in arms:
        r = results[arm]
        lines.append(
            f"| {label} | {len(r['test'])} | {format_mean_std(list(r['test'].values()))} | "  # noqa: E501
            f"{format_mean_std(list(r['val'].values()))} | "
            f"{format_mean_std(list(r['fit'].values()))} |")
    lines.append('')
    for split, metric in (('test', 'test top-1 (%)'),
                          ('val', 'validation top-1 (%)')):
        by_arm = {arm: results[arm][split] for arm in labels}
        lines += comparison_lines(by_arm, labels, base, metric)
    per_seed = []
    for seed in sorted(results[base]['test'], key=seed_key):
        if seed in results[method]['test']:
            b, m = results[base]['test'][seed], results[method]['test'][seed]
            per_seed.append(f'{seed}: {b:.2f} -> {m:.2f} ({m - b:+.2f})')
    if per_seed:
        lines += ['', f'Per seed (test top-1, baseline -> {name}): ' +
                  '; '.join(per_seed) + '.']
    selection = sorted(
        d for d in glob.glob(osp.join(work, 'select_*')) if osp.isdir(d))
    if selection:
        lines += ['', 'Selection runs (final validation top-1 (%), seeds): ' +
                  '; '.join(selection_run(d) for d in selection) + '.']
    return '\n'.join(lines) + '\n'


def results_json(work: str, arms: Arms, name: str,
                 selected: str = '') -> dict:
    """Per arm and split the top-1 per seed, and the paired comparison of
    the second arm's test top-1 with the baseline's (what the demo prints
    beside its own run)."""
    base, method = arms[0][0], arms[1][0]
    runs = {arm: collect_run(osp.join(work, arm)) for arm, _ in arms}
    out = dict(
        selected=selected, baseline=base, method=method, method_name=name,
        runs=runs)
    if runs[base]['test'] and runs[method]['test']:
        out['test_comparison'] = paired_comparison(
            runs[method]['test'], runs[base]['test'], unpaired='drop')
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work')
    parser.add_argument('--arm', nargs=2, action='append', default=[],
                        metavar=('DIR', 'LABEL'),
                        help='an arm (its work-dir name and its label); '
                        'the first is the baseline')
    parser.add_argument('--name', help='the method\'s short name (default: '
                        'the second arm\'s label after its last "+ ")')
    parser.add_argument('--best', nargs='+', help='selection: print the '
                        'run with the best final validation top-1')
    parser.add_argument('--release', metavar='DIR', help='copy the '
                        'training logs and test/fit json of the arms and of '
                        'every select_* run into DIR (the released layout)')
    parser.add_argument('--selected', default='',
                        help='the selected settings, for the table')
    parser.add_argument('--readme', help='write the table between the '
                        'MARK markers of this file')
    parser.add_argument('--mark', help='the README block name')
    args = parser.parse_args()
    if args.best:
        print(best_run(args.work, args.best))
        return
    if len(args.arm) < 2:
        parser.error('give at least two --arm: the baseline, then the method')
    if args.readme and not args.mark:
        parser.error('--readme needs --mark')
    arms = [tuple(a) for a in args.arm]
    if args.release:
        selection = [osp.basename(d) for d in glob.glob(
            osp.join(args.work, 'select_*')) if osp.isdir(d)]
        release(args.work, [a for a, _ in arms] + sorted(selection),
                args.release)
    name = args.name or arms[1][1].rsplit('+ ', 1)[-1]
    text = table(args.work, arms, name, args.selected)
    print(text)
    with open(osp.join(args.work, 'results.md'), 'w') as f:
        f.write(text)
    with open(osp.join(args.work, 'results.json'), 'w') as f:
        json.dump(results_json(args.work, arms, name, args.selected), f,
                  indent=1)
    if args.readme:
        replace_marked_block(args.readme, args.mark, text)


if __name__ == '__main__':
    main()
