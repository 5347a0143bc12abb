"""Print a demo run's method - baseline test top-1 beside its protocol's
paired result (tools/experiments/fashion_mnist_demo.sh).

    python tools/experiments/compare_with_protocol.py WORK RESULTS.json \
        [--seed seed0]

``WORK/<arm>/<seed>/test.json`` are this run's ``tools/test.py --out``
files, one per arm of RESULTS.json (written by collect_paired_protocol.py:
its ``baseline`` and ``method`` arms and the method's short name).
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work')
    parser.add_argument('results')
    parser.add_argument('--seed', default='seed0')
    args = parser.parse_args()
    with open(args.results) as f:
        results = json.load(f)
    print(report(args.work, results, args.seed))


if __name__ == '__main__':
    main()
