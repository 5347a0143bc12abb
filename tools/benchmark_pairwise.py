"""Peak memory and time of SKD's pair-wise loss: exact vs naive, full resolution.

The naive loss builds the N x N cosine-similarity matrices (N = H*W) of the
student and the teacher; mmkd's exact method computes the same value from
C x C Gram matrices (``PairWiseLoss(pool='none', method='exact')``). Each
case runs forward + backward in a fresh subprocess, and its peak memory is
the rise of the process's resident-set high-water mark (``ru_maxrss``) over
the inputs already allocated. The naive method is skipped where its N x N
matrices alone would exceed ``--naive-limit-gb``.

Usage:
    python tools/benchmark_pairwise.py [--sizes 64x64 128x128 128x256]
        [--channels-s 128] [--channels-t 512] [--batch 1] [--out FILE]
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time

CASE = r'''
import json, resource, sys, time
import torch
from mmkd.models.losses import PairWiseLoss
b, cs, ct, h, w, method = sys.argv[1:7]
b, cs, ct, h, w = map(int, (b, cs, ct, h, w))
torch.manual_seed(0)
fs = torch.randn(b, cs, h, w, requires_grad=True)
ft = torch.randn(b, ct, h, w)
loss_fn = PairWiseLoss(pool='none', method=method)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
loss = loss_fn(fs, ft)
loss.backward()
elapsed = time.perf_counter() - start
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(dict(loss=loss.item(), seconds=elapsed,
                      peak_mb=(after - before) / 1024)))
'''


def run_case(batch, cs, ct, h, w, method):
    env = dict(os.environ, PYTHONWARNINGS='ignore')
    out = subprocess.run(
        [sys.executable, '-c', CASE] +
        [str(v) for v in (batch, cs, ct, h, w, method)],
        capture_output=True, text=True, env=env)
    if out.returncode != 0:
        return dict(error=out.stderr.strip().splitlines()[-1])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--sizes', nargs='+',
                        default=['64x64', '128x128', '128x256'])
    parser.add_argument('--channels-s', type=int, default=128)
    parser.add_argument('--channels-t', type=int, default=512)
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--naive-limit-gb', type=float, default=8.0)
    parser.add_argument(
        '--out', default='work_dirs/benchmark/pairwise.jsonl')
    args = parser.parse_args()
    records = []
    for size in args.sizes:
        h, w = map(int, size.split('x'))
        n = h * w
        # two N x N float32 similarity matrices, their difference and grads
        naive_gb = 4 * args.batch * n * n * 4 / 2**30
        for method in ('exact', 'naive'):
            rec = dict(size=size, n=n, method=method, batch=args.batch,
                       channels_s=args.channels_s,
                       channels_t=args.channels_t)
            if method == 'naive' and naive_gb > args.naive_limit_gb:
                rec['skipped'] = (f'needs about {naive_gb:.0f} GiB '
                                  f'(> {args.naive_limit_gb} GiB)')
            else:
                rec.update(run_case(args.batch, args.channels_s,
                                    args.channels_t, h, w, method))
            rec['time'] = time.strftime('%Y-%m-%d %H:%M:%S')
            print(json.dumps(rec))
            records.append(rec)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'a') as f:
        for rec in records:
            f.write(json.dumps(rec) + '\n')


if __name__ == '__main__':
    main()
