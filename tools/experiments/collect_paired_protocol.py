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

``--preset NAME`` tabulates one of the single-schedule experiments released
before the paired protocols, in its own table (``PRESETS``; NAME is also
its README block): ``frskd-fashion-mnist``
(tools/experiments/frskd_fashion_mnist.sh), ``reviewkd-fashion-mnist`` and
``reviewkd-deepforest`` (reviewkd_fashion_mnist.sh, reviewkd_deepforest.sh),
``skd-nuclei`` (skd_nuclei.sh). It reads the script's work dir, or with
``--from-results`` the released ``results.json``, which re-tabulates the
README table; ``--merge-results`` adds the work dir's runs and seeds to a
released ``results.json``.

    python tools/experiments/collect_paired_protocol.py \
        --preset frskd-fashion-mnist --from-results \
        model_zoo/frskd/results.json [--readme configs/frskd/README.md]
"""
import argparse
import datetime
import glob
import json
import os
import os.path as osp
import re
import statistics
import sys
from typing import Dict, List, Optional, Tuple

# the modules shared with tools/analysis_tools/plot_curves.py
sys.path.insert(
    0, osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
                'analysis_tools'))
from paired_stats import (comparison_lines, format_mean_std,  # noqa: E402
                          paired_comparison, seed_key)
from training_logs import (METRIC_NAMES, METRIC_SCALES,  # noqa: E402
                           TEXT_LOG_ROUNDING, load_run, replace_marked_block,
                           series, text_log, timestamp_dirs)

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
    ``seed<N>/`` or, where there is none, a released ``seed<N>.log`` (not
    the ``seed<N>.interrupted*.log`` of a resumed run)."""
    out = {}
    for path in glob.glob(osp.join(run_dir, 'seed*')):
        name = osp.basename(path)
        if osp.isdir(path):
            out[name] = (path, osp.join(path, 'test.json'),
                         osp.join(path, 'fit.json'))
    for path in glob.glob(osp.join(run_dir, 'seed*.log')):
        seed = osp.basename(path)[:-len('.log')]
        if re.fullmatch(r'seed\d+', seed) and seed not in out:
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


def release(work: str,
            runs,
            dest: str,
            metric: str = 'accuracy/top1') -> None:
    """Copy the finished seeds of ``runs`` into the released layout:
    ``<dest>/<run>/seed<N>.log`` (the training log; of a run that was
    interrupted and resumed, the last one, which ends with the final
    validation, the earlier ones as ``seed<N>.interrupted.log`` or, for
    several, ``seed<N>.interrupted1.log``, ... in order; refused when that
    last log does not give the run's final validation ``metric``, to the
    text log's 4 decimals) and the test / fit json."""
    import shutil
    for run in runs:
        files = seed_files(osp.join(work, run))
        for seed, (path, test, fit) in sorted(files.items()):
            if not osp.isdir(path) or not osp.isfile(osp.join(path, 'done')):
                continue
            logs = [text_log(d) for d in timestamp_dirs(path)]
            if not logs or not all(logs):
                raise SystemExit(f'{path}: finished, but a timestamp dir '
                                 'holds no text log to release')
            *earlier, last = logs
            logged, final = final_val(last, metric), final_val(path, metric)
            scale = METRIC_SCALES.get(metric, 1.0)
            if logged is None or final is None or abs(logged - final) > (
                    TEXT_LOG_ROUNDING * (1 + 1e-3) * scale):
                raise SystemExit(
                    f'{path}: its last log {last} does not end with the '
                    "run's final validation; release this seed by hand")
            os.makedirs(osp.join(dest, run), exist_ok=True)
            shutil.copyfile(last, osp.join(dest, run, f'{seed}.log'))
            for i, log in enumerate(earlier, 1):
                tag = 'interrupted' + (str(i) if len(earlier) > 1 else '')
                shutil.copyfile(log, osp.join(dest, run, f'{seed}.{tag}.log'))
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
    seeds = ', '.join(
        seed[len('seed'):] for seed in sorted(vals, key=seed_key))
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


# The single-schedule experiments (``--preset``). 'history': per run the
# final and best validation metric over seeds (and the final ``extra``
# metrics), the minutes a seed took, and the paired differences of the final
# metric with the baseline and of ``pairs`` (arm, reference); ``short``:
# the arms' names in those lines. 'seed-columns': one teacher run, the
# students' final validation metric per seed and their median step time.
PRESETS = {
    'frskd-fashion-mnist':
    dict(
        kind='history',
        metric='accuracy/top1',
        metric_name='top-1 (%)',
        delta_name='top-1',
        runs=[('baseline', 'ResNet-14 (CE only)'),
              ('frskd', 'ResNet-14 + FRSKD')],
        baseline='baseline',
        short=dict(frskd='FRSKD')),
    'reviewkd-fashion-mnist':
    dict(
        kind='history',
        metric='accuracy/top1',
        metric_name='top-1 (%)',
        runs=[
            ('teacher_resnet56', 'ResNet-56 (teacher, 3 epochs)'),
            ('baseline_resnet20', 'ResNet-20 (student baseline, 1 epoch)'),
            ('reviewkd_resnet56-resnet20', 'ResNet-20 + ReviewKD'),
            ('kd_resnet56-resnet20', 'ResNet-20 + KD (T=4)'),
            ('reviewkd_resnet56-resnet20_bf16',
             'ResNet-20 + ReviewKD, bf16 autocast (`--amp`)'),
        ],
        baseline='baseline_resnet20',
        # what training in bf16 changes at equal settings
        pairs=[('reviewkd_resnet56-resnet20_bf16',
                'reviewkd_resnet56-resnet20')]),
    'reviewkd-deepforest':
    dict(
        kind='history',
        metric='coco/bbox_mAP',
        metric_name='bbox mAP (%)',
        extra=[('coco/bbox_mAP_50', 'mAP@50 (%)')],
        scale=100.0,
        # a finished run whose validations never produced a box (mmdet's
        # CocoMetric then logs no metric) counts as mAP 0
        missing_is_zero=True,
        runs=[
            ('teacher_r50', 'FCOS R-50/2 (teacher, 200 epochs)'),
            ('baseline_r18', 'FCOS R-18/2 (student baseline, 100 epochs)'),
            ('reviewkd_r50-r18', 'FCOS R-18/2 + ReviewKD'),
        ],
        baseline='baseline_r18'),
    'skd-nuclei':
    dict(
        kind='seed-columns',
        metric='mIoU',
        teacher='PSPNet-R34 teacher',
        runs=[
            ('baseline', 'PSPNet-R18 baseline'),
            ('pi', '+ pixel-wise (Pi)'),
            ('pi-pa', '+ Pi + pair-wise (Pa)'),
            ('all', '+ Pi + Pa + holistic (Ho)'),
        ],
        baseline='baseline',
        short={
            'baseline': 'baseline',
            'pi': 'PSPNet-R18 + Pi',
            'pi-pa': 'PSPNet-R18 + Pi + Pa',
            'all': 'PSPNet-R18 + Pi + Pa + Ho',
        },
        note=('mIoU (%) over background and nucleus on the 4 validation '
              "tiles, by mmseg's IoUMetric; s/iter: median training step "
              'time.')),
}


def _seed_dirs(run_dir: str) -> List[str]:
    return sorted((d for d in glob.glob(osp.join(run_dir, 'seed*'))
                   if osp.isdir(d)),
                  key=lambda d: seed_key(osp.basename(d)))


def _minutes(seed_dir: str) -> float:
    """From the first log's timestamp to the ``done`` marker."""
    start = datetime.datetime.strptime(
        osp.basename(timestamp_dirs(seed_dir)[0]),
        '%Y%m%d_%H%M%S').timestamp()
    return (os.path.getmtime(osp.join(seed_dir, 'done')) - start) / 60


def history_seed(seed_dir: str, spec: Dict) -> Optional[Dict]:
    """Validation history and wall time of one finished seed, or None."""
    metric, extra = spec['metric'], [k for k, _ in spec.get('extra', [])]
    if not osp.isfile(osp.join(seed_dir, 'done')) or not timestamp_dirs(
            seed_dir):
        return None
    history = [
        r for r in load_run(seed_dir) if r['mode'] == 'val' and metric in r
    ]
    if not history:
        if not spec.get('missing_is_zero'):
            return None
        history = [{metric: 0.0, **{k: 0.0 for k in extra}}]
    out = dict(
        final=history[-1][metric],
        best=max(h[metric] for h in history),
        history=[h[metric] for h in history],
        minutes=_minutes(seed_dir))
    for key in extra:
        out[f'final:{key}'] = history[-1].get(key)
    return out


def seed_columns_run(run_dir: str, metric: str) -> Optional[Dict]:
    """Final validation metrics, iterations, median step time and wall
    seconds (``done``) of one run, None if it has no validation."""
    if not timestamp_dirs(run_dir):
        return None
    records = load_run(run_dir)
    evals = [r for r in records if r['mode'] == 'val' and metric in r]
    if not evals:
        return None
    train = [r for r in records if r['mode'] == 'train' and 'time' in r]
    out = {
        metric: evals[-1][metric],
        'aAcc': evals[-1].get('aAcc'),
        'mAcc': evals[-1].get('mAcc'),
        'iters': max((r.get('iter', r['step']) for r in train), default=None),
        'sec_per_iter': (statistics.median(r['time'] for r in train)
                         if train else None)
    }
    done = osp.join(run_dir, 'done')
    if osp.isfile(done):
        with open(done) as f:
            text = f.read().strip()
        if text.isdigit():  # the run's wall seconds (tools/experiments/lib.sh)
            out['wall_seconds'] = int(text)
    return out


def collect_preset(preset: str, work: str) -> Dict:
    """The results.json of a preset's work dir."""
    spec = PRESETS[preset]
    if spec['kind'] == 'seed-columns':
        teachers = _seed_dirs(osp.join(work, 'teacher'))
        results = dict(
            teacher=(seed_columns_run(teachers[0], spec['metric'])
                     if teachers else None),
            students={})
        for run, _ in spec['runs']:
            runs = {}
            for seed_dir in _seed_dirs(osp.join(work, run)):
                res = seed_columns_run(seed_dir, spec['metric'])
                if res is not None:
                    runs[osp.basename(seed_dir)] = res
            results['students'][run] = runs
        return results
    results = {}
    for run, label in spec['runs']:
        seeds = {}
        for seed_dir in _seed_dirs(osp.join(work, run)):
            res = history_seed(seed_dir, spec)
            if res is not None:
                seeds[osp.basename(seed_dir)] = res
        results[run] = dict(label=label, seeds=seeds)
    return results


def merge_results(released: Dict, new: Dict) -> Dict:
    """``released`` (a 'history' results.json) with the runs of ``new``
    that have seeds added: a seed of ``new`` replaces the released seed of
    that name."""
    out = {run: dict(res, seeds=dict(res['seeds']))
           for run, res in released.items()}
    for run, res in new.items():
        if res['seeds']:
            out.setdefault(run, dict(label=res['label'], seeds={}))
            out[run]['label'] = res['label']
            out[run]['seeds'].update(res['seeds'])
    return out


def preset_table(preset: str, results: Dict) -> str:
    """The README block of a preset's results.json."""
    spec = PRESETS[preset]
    if spec['kind'] == 'seed-columns':
        return _seed_columns_table(spec, results)
    scale, name = spec.get('scale', 1.0), spec['metric_name']
    extra = spec.get('extra', [])
    head = ['run', 'seeds', f'final {name}', f'best {name}']
    head += [f'final {n}' for _, n in extra] + ['minutes / seed']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for res in results.values():
        seeds = list(res['seeds'].values())
        if not seeds:
            lines.append(f"| {res['label']} | 0 |" + ' – |' * (len(head) - 2))
            continue
        row = [res['label'], str(len(seeds)),
               format_mean_std([s['final'] for s in seeds], scale),
               format_mean_std([s['best'] for s in seeds], scale)]
        row += [format_mean_std([s[f'final:{key}'] for s in seeds], scale)
                for key, _ in extra]
        row.append(f"{statistics.mean(s['minutes'] for s in seeds):.1f}")
        lines.append('| ' + ' | '.join(row) + ' |')

    def finals(run):
        return {k: s['final']
                for k, s in results.get(run, {}).get('seeds', {}).items()}

    runs = [r for r, _ in spec['runs']]
    base = spec['baseline']
    labels = dict(spec['runs'], **spec.get('short', {}), **{base: 'baseline'})
    delta_name = spec.get('delta_name', name)
    lines += [''] + comparison_lines(
        {run: finals(run) for run in runs[runs.index(base):]}, labels, base,
        delta_name, scale)
    for arm, ref in spec.get('pairs', []):
        labels = dict(spec['runs'])
        lines += comparison_lines({run: finals(run) for run in (ref, arm)},
                                  labels, ref, delta_name, scale,
                                  reference=labels[ref])
    return '\n'.join(lines).rstrip('\n') + '\n'


def _seed_columns_table(spec: Dict, results: Dict) -> str:
    metric = spec['metric']
    students = results['students']
    seeds = sorted({s for runs in students.values() for s in runs},
                   key=seed_key)
    head = ['model', f'{metric} (mean ± std)'] + seeds + ['s/iter']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    teacher = results['teacher']
    if teacher is not None:
        step = teacher['sec_per_iter']
        lines.append('| ' + ' | '.join(
            [spec['teacher'], f'{teacher[metric]:.2f}'] + [''] * len(seeds) +
            [f'{step:.2f}' if step else '']) + ' |')
    for run, label in spec['runs']:
        runs = students.get(run, {})
        times = [r['sec_per_iter'] for r in runs.values() if r['sec_per_iter']]
        lines.append('| ' + ' | '.join(
            [label, format_mean_std([r[metric] for r in runs.values()])] +
            [f'{runs[s][metric]:.2f}' if s in runs else '' for s in seeds] +
            [f'{statistics.mean(times):.2f}' if times else '']) + ' |')
    iters = {r['iters'] for runs in students.values() for r in runs.values()}
    note = (f'\nStudents: {", ".join(str(i) for i in sorted(iters))} '
            'iterations each; ' if iters else '\n')
    if teacher is not None:
        note += f"teacher: {teacher['iters']} iterations. "
    note += spec['note'] + '\n'
    values = {run: {k: r[metric] for k, r in students.get(run, {}).items()}
              for run, _ in spec['runs']}
    deltas = comparison_lines(values, spec['short'], spec['baseline'],
                              f'{metric} (%)')
    if deltas:
        note += '\n' + '\n'.join(deltas) + '\n'
    return '\n'.join(lines) + '\n' + note


def main_preset(args) -> None:
    if (args.work is None) == (args.from_results is None):
        raise SystemExit('--preset: pass either WORK or --from-results')
    if args.from_results:
        with open(args.from_results) as f:
            results = json.load(f)
    else:
        results = collect_preset(args.preset, args.work)
        if args.merge_results:
            with open(args.merge_results) as f:
                results = merge_results(json.load(f), results)
    text = preset_table(args.preset, results)
    if args.work:
        with open(osp.join(args.work, 'results.json'), 'w') as f:
            json.dump(results, f, indent=2)
        with open(osp.join(args.work, 'results.md'), 'w') as f:
            f.write(text)
    print(text)
    if args.readme:
        replace_marked_block(args.readme, args.mark or args.preset, text)
        print(f'updated {args.readme}')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work', nargs='?')
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
    parser.add_argument('--preset', choices=sorted(PRESETS),
                        help='a single-schedule experiment, in its table')
    parser.add_argument('--from-results', metavar='JSON', help='--preset: '
                        're-tabulate a results.json written before')
    parser.add_argument('--merge-results', metavar='JSON', help='--preset: '
                        'add the runs and seeds of WORK to this results.json '
                        '(same seed name: WORK wins)')
    args = parser.parse_args(argv)
    if args.preset:
        main_preset(args)
        return
    if args.work is None:
        parser.error('give the work dir of the protocol')
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
                args.release, args.metric)
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
