"""Draw the paired comparisons of a protocol into one PNG (a forest plot).

Reads the ``results.json`` that
``tools/experiments/collect_paired_protocol.py`` writes (its
``comparisons``: every test comparison of the protocol). One row per
comparison, ``arm - reference``: the per-seed differences as dots, their
mean as a diamond, the 95 % t-interval as a thick bar and, when the protocol
corrects for its family of comparisons, the Bonferroni-corrected interval as
a thin bar; a dashed line at 0. A comparison decides only when its corrected
interval (or, without a correction, its 95 % one) lies on one side of 0.

Usage::

    python tools/analysis_tools/plot_paired_differences.py RESULTS.json \
        OUT.png [--title TEXT] [--caption TEXT] \
        [--readme configs/skd/README.md --mark NAME]

With ``--readme`` the image link, the caption and the command replace the
block between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``.
"""
import argparse
import json
import os.path as osp
import shlex
import sys
from typing import Dict, List, Optional

from training_logs import METRIC_NAMES, replace_marked_block


def rows(results: dict) -> List[Dict]:
    """The comparisons to draw, top to bottom, with their row label."""
    comps = results.get('comparisons') or []
    if not comps:
        raise SystemExit('no comparisons in the results (run '
                         'collect_paired_protocol.py with at least two arms '
                         'that share seeds)')
    out = []
    for c in comps:
        ref = ('baseline' if c['reference'] == results['baseline'] else
               c['reference_label'])
        out.append(dict(c, text=f"{c['label']} - {ref}"))
    return out


def plot(results: dict, out: str, title: Optional[str] = None) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    comps = rows(results)
    metric = METRIC_NAMES.get(results.get('metric', ''),
                              results.get('metric', 'metric'))
    fig, ax = plt.subplots(figsize=(8.5, 0.5 * len(comps) + 1.6))
    for y, c in enumerate(reversed(comps)):
        decided = c.get('corrected') or c.get('ci')
        colour = ('tab:green' if decided and decided[0] > 0 else
                  'tab:red' if decided and decided[1] < 0 else 'tab:gray')
        if c.get('corrected'):
            ax.plot(c['corrected'], [y, y], '-', color=colour, lw=1.2)
        if c.get('ci'):
            ax.plot(c['ci'], [y, y], '-', color=colour, lw=4.5,
                    solid_capstyle='butt')
        ax.plot(c['diffs'], [y] * len(c['diffs']), 'o', ms=3.5, mfc='white',
                mec='black', mew=0.8, zorder=3)
        ax.plot([c['mean']], [y], 'D', color='black', ms=6, zorder=4)
    ax.axvline(0, color='black', ls='--', lw=0.8)
    ax.set_yticks(range(len(comps)))
    ax.set_yticklabels([c['text'] for c in reversed(comps)])
    family = next((c['family'] for c in comps if c.get('family')), None)
    legend = (f'thick: 95 % t-interval; thin: Bonferroni-corrected for '
              f'{family} comparisons' if family else 'bar: 95 % t-interval')
    ax.set_xlabel(f'paired difference of the test {metric} (points); dots: '
                  f'seeds, diamond: mean\n{legend}', fontsize=9)
    if title:
        ax.set_title(title)
    ax.grid(axis='x', alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('results', help="collect_paired_protocol.py's json")
    parser.add_argument('out', help='the PNG to write')
    parser.add_argument('--title')
    parser.add_argument('--caption')
    parser.add_argument('--readme')
    parser.add_argument('--mark')
    args = parser.parse_args(argv)
    if bool(args.readme) != bool(args.mark):
        parser.error('--readme and --mark go together')
    with open(args.results) as f:
        results = json.load(f)
    plot(results, args.out, args.title)
    print(f'{args.out}: {len(rows(results))} comparisons')
    if args.readme:
        rel = osp.relpath(args.out, osp.dirname(osp.abspath(args.readme)))
        argv = sys.argv[1:] if argv is None else argv
        command = ('python tools/analysis_tools/plot_paired_differences.py '
                   + ' '.join(shlex.quote(a) for a in argv))
        caption = f'{args.caption}\n\n' if args.caption else ''
        text = (f'![{args.title or "paired differences"}]({rel})\n\n'
                f'{caption}<details><summary>command</summary>\n\n'
                f'```shell\n{command}\n```\n</details>\n')
        replace_marked_block(args.readme, args.mark, text)


if __name__ == '__main__':
    main()
