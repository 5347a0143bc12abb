"""Print a demo run's method - baseline test top-1 beside its protocol's
paired result (tools/experiments/fashion_mnist_demo.sh), and draw both.

    python tools/experiments/compare_with_protocol.py WORK RESULTS.json \
        [--seed seed0] [--plot OUT.png]

``WORK/<arm>/<seed>/test.json`` are this run's ``tools/test.py --out``
files, one per arm of RESULTS.json (written by collect_paired_protocol.py:
its ``baseline`` and ``method`` arms and the method's short name).
``--plot`` draws the protocol's test top-1 per seed, baseline to method (one
line per seed), with this run's pair drawn over them.
"""
import argparse
import json
import os.path as osp


def top1(path: str) -> float:
    with open(path) as f:
        return float(json.load(f)['accuracy/top1'])


def report(work: str, results: dict, seed: str) -> str:
    name = results['method_name']
    base = top1(osp.join(work, results['baseline'], seed, 'test.json'))
    method = top1(osp.join(work, results['method'], seed, 'test.json'))
    lines = [
        f'baseline (CE only) {base:.2f}   {name} {method:.2f}   '
        f'{name} - baseline {method - base:+.2f} (this run, {seed})'
    ]
    comp = results.get('test_comparison')
    if not comp:
        lines.append('the protocol has no paired result yet')
        return '\n'.join(lines)
    ci = comp['ci']
    text = (f"protocol, {comp['n']} paired seeds: {name} - baseline "
            f"{comp['mean']:+.2f}")
    if ci:
        where = 'excludes 0' if ci[0] > 0 or ci[1] < 0 else 'includes 0'
        text += f', 95 % CI [{ci[0]:+.2f}, {ci[1]:+.2f}] ({where})'
    text += f"; {name} better on {comp['wins']} of {comp['n']} seeds"
    lines.append(text)
    diffs = dict(zip(comp['seeds'], comp['diffs']))
    if seed in diffs:
        lines.append(f'the protocol\'s own {seed}: {diffs[seed]:+.2f} '
                     '(the same configs and seed; CPU runs of another '
                     'commit can differ by float rounding)')
    return '\n'.join(lines)


def plot(work: str, results: dict, seed: str, out: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    name = results['method_name']
    runs = results['runs']
    base_runs = runs[results['baseline']]['test']
    method_runs = runs[results['method']]['test']
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    for s in sorted(set(base_runs) & set(method_runs)):
        b, m = base_runs[s], method_runs[s]
        ax.plot([0, 1], [b, m], '-o', color='tab:green' if m > b else
                'tab:red', alpha=0.55, lw=1.2)
        ax.annotate(s, (1, m), xytext=(6, 0), textcoords='offset points',
                    va='center', fontsize=8, color='0.35')
    base = top1(osp.join(work, results['baseline'], seed, 'test.json'))
    method = top1(osp.join(work, results['method'], seed, 'test.json'))
    ax.plot([0, 1], [base, method], '-D', color='black', lw=2.2, ms=7,
            label=f'this run ({seed}): {method - base:+.2f}')
    comp = results.get('test_comparison')
    title = f'{name} vs CE baseline, test top-1 per seed'
    if comp and comp.get('ci'):
        lo, hi = comp['ci']
        title += (f"\nprotocol: {comp['mean']:+.2f} [{lo:+.2f}, {hi:+.2f}], "
                  f"{comp['wins']} of {comp['n']} seeds")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([0, 1], ['baseline (CE)', name])
    ax.set_xlim(-0.3, 1.45)
    ax.set_ylabel('test top-1 (%)')
    ax.grid(alpha=0.3)
    ax.legend(loc='lower right', fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work')
    parser.add_argument('results')
    parser.add_argument('--seed', default='seed0')
    parser.add_argument('--plot', metavar='OUT.png',
                        help='draw the per-seed pairs with this run marked')
    args = parser.parse_args()
    with open(args.results) as f:
        results = json.load(f)
    print(report(args.work, results, args.seed))
    if args.plot:
        plot(args.work, results, args.seed, args.plot)


if __name__ == '__main__':
    main()
