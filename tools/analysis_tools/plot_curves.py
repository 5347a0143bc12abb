"""Plot training curves of several runs grouped by arm into one PNG.

Every run is an MMEngine text log (``*.log``), a ``vis_data/scalars.json``
or a work dir (read by ``training_logs.py`` beside this script). For every
arm (e.g. the baseline and the distilled student, a few seeds each) the
figure shows the mean over its runs of the validation metric(s) (per epoch,
or per iteration for iteration-based loops) and of every loss term the runs
log (``loss``, ``decode.loss_ce``, ``distill.*``, ``critic.*``, ... per
iteration), with a min-max band (``--band minmax``) or a mean +- sample-std
band (``--band std``) over the runs. Only the steps all runs of an arm logged
enter its curve; a loss panel whose values span more than a factor 100 gets
a log scale.

Usage::

    python tools/analysis_tools/plot_curves.py OUT.png \
        --arm baseline 'work_dirs/baseline/seed*/*/*.log' \
        --arm ReviewKD 'work_dirs/reviewkd/seed*' \
        [--metric accuracy/top1] [--keys loss distill.loss_hcl] [--band std] \
        [--alias loss=student.loss] [--title TEXT] \
        [--readme configs/reviewkd/README.md --mark NAME]

``--alias OLD=NEW`` draws a run's ``OLD`` in the ``NEW`` panel when the run
does not log ``NEW``: e.g. the baseline's ``loss`` (its task loss) beside the
distilled students' ``student.loss``. Quoted paths are expanded as glob
patterns. With ``--readme`` the image link, ``--caption`` and the command
replace the block between ``<!-- NAME:start -->`` and
``<!-- NAME:end -->`` of the README.
"""
import argparse
import glob
import math
import os
import os.path as osp
import shlex
import sys
from typing import Dict, List, Optional, Sequence

import numpy as np

from training_logs import load_run, replace_marked_block, series

TIMING_KEYS = ('time', 'data_time', 'time_s', 'step', 'epoch', 'iter', 'mode',
               'memory')


def prepare_curve(runs: Sequence[Dict[int, float]],
                  band: str = 'minmax') -> Dict[str, np.ndarray]:
    """Mean and band over the runs of one arm, at the steps all runs have.

    Args:
        runs: ``{step: value}`` per run.
        band: ``'minmax'`` (the lowest and highest run) or ``'std'``
            (mean -+ the sample standard deviation; zero width for 1 run).

    Returns:
        dict of arrays ``x`` (steps, ascending), ``mean``, ``low``,
        ``high`` and the number of runs ``n``.
    """
    if band not in ('minmax', 'std'):
        raise ValueError(f"band must be 'minmax' or 'std', got {band!r}")
    if not runs:
        raise ValueError('prepare_curve needs at least one run')
    steps = sorted(set.intersection(*(set(r) for r in runs)))
    if not steps:
        raise ValueError('the runs share no logged step: '
                         f'{[sorted(r)[:3] for r in runs]} ...')
    values = np.array([[r[s] for s in steps] for r in runs], dtype=float)
    mean = values.mean(axis=0)
    if band == 'minmax':
        low, high = values.min(axis=0), values.max(axis=0)
    else:
        std = values.std(axis=0, ddof=1) if len(runs) > 1 else 0 * mean
        low, high = mean - std, mean + std
    return dict(x=np.array(steps), mean=mean, low=low, high=high, n=len(runs))


def prepare(arms: Dict[str, List[List[Dict]]], key: str, mode: str,
            band: str) -> Dict[str, Dict[str, np.ndarray]]:
    """:func:`prepare_curve` of ``key`` for every arm whose runs log it
    (``mode`` ``'train'`` or ``'val'``)."""
    curves = {}
    for label, runs in arms.items():
        values = [series(r, key, mode) for r in runs]
        values = [v for v in values if v]
        if values:
            curves[label] = prepare_curve(values, band)
    return curves


def loss_keys(arms: Dict[str, List[List[Dict]]]) -> List[str]:
    """The loss terms of the training records, in order of appearance."""
    keys = []
    for runs in arms.values():
        for records in runs:
            for r in records:
                if r['mode'] != 'train':
                    continue
                for k in r:
                    if 'loss' in k and k not in keys:
                        keys.append(k)
    return keys


def metric_keys(arms: Dict[str, List[List[Dict]]]) -> List[str]:
    """The validation metrics of the records, in order of appearance."""
    keys = []
    for runs in arms.values():
        for records in runs:
            for r in records:
                if r['mode'] == 'val':
                    keys += [
                        k for k in r if k not in TIMING_KEYS and k not in keys
                    ]
    return keys


def plot(arms: Dict[str, List[List[Dict]]],
         out: str,
         metrics: Optional[List[str]] = None,
         keys: Optional[List[str]] = None,
         band: str = 'minmax',
         title: Optional[str] = None) -> List[str]:
    """Draw the metric panels then the loss panels; returns the panel keys
    drawn."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    metrics = metric_keys(arms) if metrics is None else metrics
    keys = loss_keys(arms) if keys is None else keys
    panels = [(k, 'val') for k in metrics] + [(k, 'train') for k in keys]
    panels = [(k, m, prepare(arms, k, m, band)) for k, m in panels]
    panels = [p for p in panels if p[2]]
    if not panels:
        raise ValueError('none of the runs logs the metrics or loss terms '
                         f'asked for: {metrics + keys}')
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(4.6 * ncols, 3.3 * nrows), squeeze=False)
    colors = plt.rcParams['axes.prop_cycle'].by_key()['color']
    by_epoch = any('epoch' in r for runs in arms.values() for rec in runs
                   for r in rec if r['mode'] == 'val')
    for ax, (key, mode, curves) in zip(axes.flat, panels):
        xlabel = 'epoch' if mode == 'val' and by_epoch else 'iteration'
        # a single validation per run: one point per arm with its band
        single = all(len(c['x']) == 1 for c in curves.values())
        for i, label in enumerate(arms):
            if label not in curves:
                continue
            c, color = curves[label], colors[i % len(colors)]
            name = f"{label} (n={c['n']})"
            if single:
                ax.errorbar([i],
                            c['mean'],
                            yerr=[c['mean'] - c['low'], c['high'] - c['mean']],
                            fmt='o',
                            capsize=5,
                            color=color,
                            label=name)
            else:
                ax.plot(
                    c['x'],
                    c['mean'],
                    color=color,
                    lw=1.4,
                    marker='o' if len(c['x']) < 12 else None,
                    ms=3,
                    label=name)
                ax.fill_between(
                    c['x'], c['low'], c['high'], color=color, alpha=0.2, lw=0)
        if single:
            steps = sorted({int(c['x'][0]) for c in curves.values()})
            ax.set_xticks(range(len(arms)))
            ax.set_xticklabels(list(arms), rotation=15, fontsize=8)
            ax.set_xlim(-0.5, len(arms) - 0.5)
            xlabel = f"{xlabel} {', '.join(map(str, steps))}"
        low = min(c['low'].min() for c in curves.values())
        high = max(c['high'].max() for c in curves.values())
        log = mode == 'train' and low > 0 and high / low > 100
        if log:  # e.g. a feature loss falling by orders of magnitude
            ax.set_yscale('log')
        ax.set_title(
            f"{key} ({'validation' if mode == 'val' else 'train'}"
            f"{', log scale' if log else ''})",
            fontsize=10)
        ax.set_xlabel(xlabel, fontsize=9)
        if not single:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis('off')
    for i, (ax, (_, _, curves)) in enumerate(zip(axes.flat, panels)):
        if i == 0 or set(curves) != set(panels[0][2]):
            ax.legend(fontsize=7)
    band_text = 'min-max' if band == 'minmax' else '± sample std'
    fig.suptitle(
        (title + '\n' if title else '') +
        f'mean over seeds, band: {band_text} over seeds',
        fontsize=11)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return [k for k, _, _ in panels]


def apply_aliases(records: List[Dict], aliases: Sequence[str]) -> None:
    """``OLD=NEW``: copy ``OLD`` to ``NEW`` in the records of a run that
    never logs ``NEW`` (in place)."""
    for alias in aliases:
        old, sep, new = alias.partition('=')
        if not sep or not old or not new:
            raise ValueError(f'--alias takes OLD=NEW, got {alias!r}')
        if any(new in r for r in records):
            continue
        for r in records:
            if old in r:
                r[new] = r[old]


def expand(paths: Sequence[str]) -> List[str]:
    """Glob patterns to sorted paths; a pattern matching nothing fails."""
    out = []
    for p in paths:
        found = sorted(glob.glob(p)) if glob.has_magic(p) else [p]
        if not found or not all(osp.exists(f) for f in found):
            raise FileNotFoundError(f'no run matches {p}')
        out += found
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('out', help='the PNG to write')
    parser.add_argument(
        '--arm',
        nargs='+',
        action='append',
        required=True,
        metavar=('LABEL', 'RUN'),
        help='a label and its runs (text logs, scalars.json or work dirs; '
        'glob patterns allowed); repeat for every arm')
    parser.add_argument(
        '--metric', nargs='+', help='validation metrics (default: all)')
    parser.add_argument(
        '--keys',
        nargs='+',
        help='loss terms (default: every key with '
        '"loss" in its name)')
    parser.add_argument(
        '--alias',
        nargs='+',
        default=[],
        metavar='OLD=NEW',
        help='plot OLD as NEW for runs that do not log NEW')
    parser.add_argument('--band', choices=['minmax', 'std'], default='minmax')
    parser.add_argument('--title')
    parser.add_argument(
        '--caption', help='a sentence under the image in the README block')
    parser.add_argument('--readme', help='README whose block to replace')
    parser.add_argument('--mark', help='the README block name')
    args = parser.parse_args(argv)
    if bool(args.readme) != bool(args.mark):
        parser.error('--readme and --mark go together')
    arms = {}
    for arm in args.arm:
        if len(arm) < 2:
            parser.error(f'--arm {arm[0]} has no run: --arm LABEL RUN ...')
        arms[arm[0]] = [load_run(p) for p in expand(arm[1:])]
        for records in arms[arm[0]]:
            apply_aliases(records, args.alias)
    panels = plot(arms, args.out, args.metric, args.keys, args.band,
                  args.title)
    print(f'{args.out}: {", ".join(panels)}; ' +
          ', '.join(f'{label}: {len(runs)} runs'
                    for label, runs in arms.items()))
    if args.readme:
        rel = osp.relpath(args.out, osp.dirname(osp.abspath(args.readme)))
        argv = sys.argv[1:] if argv is None else argv
        command = 'python tools/analysis_tools/plot_curves.py ' + ' '.join(
            shlex.quote(a) for a in argv)
        caption = f'{args.caption}\n\n' if args.caption else ''
        text = (f'![{args.title or "training curves"}]({rel})\n\n{caption}'
                f'<details><summary>command</summary>\n\n```shell\n'
                f'{command}\n```\n</details>\n')
        replace_marked_block(args.readme, args.mark, text)


if __name__ == '__main__':
    main()
