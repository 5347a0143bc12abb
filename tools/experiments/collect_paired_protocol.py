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
by seed; ``--versus REF ARM...`` adds the comparisons of those arms with REF,
``--family-wise`` a Bonferroni-corrected interval for the whole family of
comparisons beside each test comparison; ``--reference DIR LABEL`` a run
compared only as the REF of ``--versus``. ``--metric`` names the key of the
validation log and of the test json (default ``accuracy/top1``; ``mIoU``
for the nuclei protocol, configs/skd/README.md).

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

METRIC_NAMES = {'accuracy/top1': 'top-1', 'mIoU': 'mIoU',
                'coco/bbox_mAP': 'box AP', 'coco/bbox_mAP_50': 'box AP50'}
#: Metrics logged as fractions, shown in %.
METRIC_SCALES = {'coco/bbox_mAP': 100.0, 'coco/bbox_mAP_50': 100.0}
Arms = List[Tuple[str, str]]  # (work-dir name, label); the first: baseline


def final_val(run: str, metric: str) -> Optional[float]:
    """The validation top-1 of the last validation of a finished run (a
    work dir with ``done``, or a released training log)."""
    if osp.isdir(run) and not osp.isfile(osp.join(run, 'done')):
        return None
    values = series(load_run(run), metric, 'val')
    scale = METRIC_SCALES.get(metric, 1.0)
    return values[max(values)] * scale if values else None


def json_metric(path: str, metric: str) -> Optional[float]:
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return float(json.load(f)[metric]) * METRIC_SCALES.get(metric, 1.0)


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


def collect_run(run_dir: str,
                metric: str = 'accuracy/top1') -> Dict[str, Dict[str, float]]:
    """``{'val'|'test'|'fit': {seed: value}}`` of a run's finished seeds."""
    out = dict(val={}, test={}, fit={})
    files = seed_files(run_dir)
    for seed in sorted(files, key=seed_key):
        run, test, fit = files[seed]
        for key, value in (('val', final_val(run, metric)),
                           ('test', json_metric(test, metric)),
                           ('fit', json_metric(fit, metric))):
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


def table(work: str, arms: Arms, name: str, selected: str = '',
          metric: str = 'accuracy/top1',
          versus: Optional[List[str]] = None,
          family_wise: bool = False,
          teacher: Optional[Tuple[str, str]] = None,
          reference: Optional[Tuple[str, str]] = None) -> str:
    """The markdown block: one row per arm (and the reference run's and the
    teacher's), the paired comparisons of the test and validation metric
    (with ``versus``: also of ``versus[1:]`` against ``versus[0]``, which
    may be the ``reference`` run: compared with nothing else), the per-seed
    test values, the selection runs."""
    labels = dict(arms)
    base, method = arms[0][0], arms[1][0]
    short = METRIC_NAMES.get(metric, metric)
    compared = arms + ([reference] if reference else [])
    rows = compared + ([teacher] if teacher else [])
    row_labels = dict(rows)
    results = {arm: collect_run(osp.join(work, arm), metric)
               for arm, _ in rows}
    with_fit = any(results[arm]['fit'] for arm in labels)
    lines = []
    if selected:
        lines += [f'Selected on the validation split: {selected}.', '']
    head = f'| run | seeds | test {short} (%) | validation {short} (%) |'
    rule = '| --- | :-: | :-: | :-: |'
    if with_fit:
        head += f' training-subset {short} (%) |'
        rule += ' :-: |'
    lines += [head, rule]
    for arm, label in rows:
        r = results[arm]
        line = (f"| {label} | {len(r['test'])} | "
                f"{format_mean_std(list(r['test'].values()))} | "
                f"{format_mean_std(list(r['val'].values()))} |")
        if with_fit:
            line += f" {format_mean_std(list(r['fit'].values()))} |"
        lines.append(line)
    lines.append('')
    # the family: every arm against the baseline, those of --versus
    # against its reference
    family = len(arms) - 1 + (len(versus) - 1 if versus else 0)
    for split, what in (('test', f'test {short} (%)'),
                        ('val', f'validation {short} (%)')):
        by_arm = {arm: results[arm][split] for arm in labels}
        corrected = family if family_wise and split == 'test' else None
        lines += comparison_lines(by_arm, labels, base, what,
                                  family=corrected)
        if versus:
            ref = versus[0]
            subset = {arm: results[arm][split] for arm in versus}
            lines += comparison_lines(
                subset, row_labels, ref, what, reference=row_labels[ref],
                family=corrected)
    if family_wise:
        lines += ['', f'Family: {family} comparisons of the test {short}, '
                  'fixed before the runs.']
    if len(compared) > 2:  # every compared run's test value per seed
        seeds = sorted({s for arm, _ in compared
                        for s in results[arm]['test']}, key=seed_key)
        lines += ['', f'| test {short} (%) | ' + ' | '.join(seeds) + ' |',
                  '| --- |' + ' :-: |' * len(seeds)]
        for arm, label in compared:
            test = results[arm]['test']
            lines.append(f'| {label} | ' + ' | '.join(
                f'{test[s]:.2f}' if s in test else '-' for s in seeds) + ' |')
    per_seed = []
    for seed in sorted(results[base]['test'], key=seed_key):
        if seed in results[method]['test']:
            b, m = results[base]['test'][seed], results[method]['test'][seed]
            per_seed.append(f'{seed}: {b:.2f} -> {m:.2f} ({m - b:+.2f})')
    if per_seed and len(compared) == 2:
        lines += ['', f'Per seed (test {short}, baseline -> {name}): ' +
                  '; '.join(per_seed) + '.']
    selection = sorted(
        d for d in glob.glob(osp.join(work, 'select_*')) if osp.isdir(d))
    if selection:
        lines += ['', f'Selection runs (final validation {short} (%), '
                  'seeds): ' + '; '.join(selection_run(d) for d in selection)
                  + '.']
    return '\n'.join(lines) + '\n'


def results_json(work: str, arms: Arms, name: str,
                 selected: str = '', metric: str = 'accuracy/top1',
                 versus: Optional[List[str]] = None,
                 family_wise: bool = False,
                 reference: Optional[Tuple[str, str]] = None) -> dict:
    """Per arm and split the metric per seed; the paired comparison of the
    second arm's test metric with the baseline's (what the demo prints
    beside its own run); ``comparisons``: every test comparison of the
    table (``versus`` included), with its Bonferroni-corrected interval
    (``corrected``) when ``family_wise``."""
    compared = arms + ([reference] if reference else [])
    labels = dict(compared)
    base, method = arms[0][0], arms[1][0]
    runs = {arm: collect_run(osp.join(work, arm), metric)
            for arm, _ in compared}
    out = dict(
        selected=selected, metric=metric, baseline=base, method=method,
        method_name=name, runs=runs)
    if runs[base]['test'] and runs[method]['test']:
        out['test_comparison'] = paired_comparison(
            runs[method]['test'], runs[base]['test'], unpaired='drop')
    pairs = [(arm, base) for arm, _ in arms if arm != base]
    if versus:
        pairs += [(arm, versus[0]) for arm in versus[1:]]
    family = len(pairs)
    out['comparisons'] = []
    for arm, ref in pairs:
        if not set(runs[arm]['test']) & set(runs[ref]['test']):
            continue
        comp = paired_comparison(runs[arm]['test'], runs[ref]['test'],
                                 unpaired='drop')
        comp.update(arm=arm, label=labels[arm], reference=ref,
                    reference_label=labels[ref])
        if family_wise and comp['n'] > 1:
            comp['family'] = family
            comp['corrected'] = paired_comparison(
                runs[arm]['test'], runs[ref]['test'],
                1 - (1 - comp['confidence']) / family,
                unpaired='drop')['ci']
        out['comparisons'].append(comp)
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
    parser.add_argument('--metric', default='accuracy/top1',
                        help='the key of the validation log and test json')
    parser.add_argument('--versus', nargs='+', metavar='ARM',
                        help='REF ARM...: also compare these arms with the '
                        'arm REF')
    parser.add_argument('--family-wise', action='store_true',
                        help='a Bonferroni-corrected interval for all the '
                        'comparisons beside each test comparison')
    parser.add_argument('--teacher', nargs=2, metavar=('DIR', 'LABEL'),
                        help='a row for the teacher run (not compared)')
    parser.add_argument('--results', default='results', metavar='NAME',
                        help='write WORK/NAME.md and WORK/NAME.json '
                        '(default: results)')
    parser.add_argument('--reference', nargs=2, metavar=('DIR', 'LABEL'),
                        help='a run compared only as the reference of '
                        '--versus (not with the baseline)')
    args = parser.parse_args()
    if args.best:
        print(best_run(args.work, args.best))
        return
    if len(args.arm) < 2:
        parser.error('give at least two --arm: the baseline, then the method')
    if args.readme and not args.mark:
        parser.error('--readme needs --mark')
    arms = [tuple(a) for a in args.arm]
    reference = tuple(args.reference) if args.reference else None
    known = {a for a, _ in arms} | ({reference[0]} if reference else set())
    if args.versus and (len(args.versus) < 2
                        or not set(args.versus) <= known):
        parser.error('--versus takes a reference run and at least one '
                     'other, each given with --arm or --reference')
    if args.release:
        selection = [osp.basename(d) for d in glob.glob(
            osp.join(args.work, 'select_*')) if osp.isdir(d)]
        extra = [r[0] for r in (args.reference, args.teacher) if r]
        release(args.work, [a for a, _ in arms] + extra + sorted(selection),
                args.release)
    name = args.name or arms[1][1].rsplit('+ ', 1)[-1]
    text = table(args.work, arms, name, args.selected, args.metric,
                 args.versus, args.family_wise,
                 tuple(args.teacher) if args.teacher else None, reference)
    print(text)
    with open(osp.join(args.work, f'{args.results}.md'), 'w') as f:
        f.write(text)
    with open(osp.join(args.work, f'{args.results}.json'), 'w') as f:
        json.dump(results_json(args.work, arms, name, args.selected,
                               args.metric, args.versus, args.family_wise,
                               reference),
                  f, indent=1)
    if args.readme:
        replace_marked_block(args.readme, args.mark, text)


if __name__ == '__main__':
    main()
