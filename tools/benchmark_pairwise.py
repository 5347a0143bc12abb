"""Cost and accuracy of SKD's pair-wise loss at full resolution.

The naive loss builds the N x N cosine-similarity matrices (N = H*W) of the
student and the teacher; mmkd's exact method computes the same value from
C x C Gram matrices (``PairWiseLoss(pool='none', method='exact')``, float64
by default, ``gram_dtype='float32'`` optional).

Cost (default): each case (``exact`` = float64, ``exact-float32``,
``naive``) runs forward + backward ``--repeats`` times in a fresh
subprocess; its peak memory is the rise of the process's resident-set
high-water mark (``ru_maxrss``) over the inputs already allocated, its time
the fastest repeat. The naive method is skipped where its N x N matrices
alone would exceed ``--naive-limit-gb``.

Accuracy (``--accuracy``): float32 inputs in four regimes (``relu``:
independent post-ReLU features; ``cos99``: post-ReLU features whose
positions have cosines near 0.99; ``converged``: student structure equal to
the teacher's up to a relative perturbation of 1e-4, loss ~1e-10;
``converged-cos1``: the same with node cosines all close to 1, the worst
case of the Gram identity, loss ~1e-13), each method's value and gradient
against a float64 naive computation tiled over rows (no N x N matrix is
held); with the time of its forward + backward (one run, ``seconds``).

Usage:
    python tools/benchmark_pairwise.py [--sizes 64x64 128x128 128x256]
        [--channels-s 128] [--channels-t 512] [--batch 1] [--out FILE]
    python tools/benchmark_pairwise.py --accuracy [--sizes 64x64]
        [--batch 2] [--out FILE]
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time

METHODS = {
    'exact': dict(method='exact'),
    'exact-float32': dict(method='exact', gram_dtype='float32'),
    'naive': dict(method='naive'),
}

CASE = r'''
import json, resource, sys, time
import torch
from mmkd.models.losses import PairWiseLoss
b, cs, ct, h, w, repeats = map(int, sys.argv[1:7])
kwargs = json.loads(sys.argv[7])
torch.manual_seed(0)
fs = torch.randn(b, cs, h, w).relu().requires_grad_(True)
ft = torch.randn(b, ct, h, w).relu()
loss_fn = PairWiseLoss(pool='none', **kwargs)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
times = []
for _ in range(repeats):
    fs.grad = None
    start = time.perf_counter()
    loss = loss_fn(fs, ft)
    loss.backward()
    times.append(time.perf_counter() - start)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(dict(loss=loss.item(), seconds=min(times),
                      peak_mb=(after - before) / 1024)))
'''


def run_case(batch, cs, ct, h, w, kwargs, repeats):
    env = dict(os.environ, PYTHONWARNINGS='ignore')
    out = subprocess.run(
        [sys.executable, '-c', CASE] +
        [str(v) for v in (batch, cs, ct, h, w, repeats)] +
        [json.dumps(kwargs)],
        capture_output=True, text=True, env=env)
    if out.returncode != 0:
        return dict(error=out.stderr.strip().splitlines()[-1])
    return json.loads(out.stdout.strip().splitlines()[-1])


def make_features(regime, batch, cs, ct, h, w, seed=0):
    """float32 student and teacher features of one accuracy regime."""
    import torch
    g = torch.Generator().manual_seed(seed)
    if regime == 'relu':
        fs = torch.randn(batch, cs, h, w, generator=g).relu()
        ft = torch.randn(batch, ct, h, w, generator=g).relu()
    elif regime == 'cos99':
        # a large common component per channel: cosines of ~0.99
        def feat(c):
            mean = 3 * torch.randn(batch, c, 1, 1, generator=g).abs()
            noise = torch.randn(batch, c, h, w, generator=g)
            return (mean + 0.4 * noise).relu()

        fs, ft = feat(cs), feat(ct)
    elif regime in ('converged', 'converged-cos1'):
        # teacher = each student channel repeated ct/cs times (an isometry:
        # same cosines); student perturbed by a relative 1e-4
        if ct % cs:
            raise ValueError('converged regime needs ct divisible by cs')
        if regime == 'converged':
            z = torch.randn(batch, cs, h, w, generator=g).relu() + 0.05
        else:  # a large positive part per channel: node cosines ~1
            mean = 3 * torch.rand(batch, cs, 1, 1, generator=g) + 0.5
            z = (mean +
                 0.02 * torch.randn(batch, cs, h, w, generator=g)).relu()
        k = ct // cs
        ft = z.repeat_interleave(k, dim=1) / k**0.5
        fs = z * (1 + 1e-4 * torch.randn(z.shape, generator=g))
    else:
        raise ValueError(f'unknown regime {regime!r}')
    return fs.float(), ft.float()


def reference(fs, ft, block=512):
    """float64 naive loss and its gradient w.r.t. ``fs``, tiled over rows
    of the N x N matrices (the norm detached, as the loss)."""
    import torch
    fs, ft = fs.double(), ft.double()
    ns = fs.norm(dim=1, keepdim=True) + 1e-8
    nt = ft.norm(dim=1, keepdim=True) + 1e-8
    gs, gt = (fs / ns).flatten(2), (ft / nt).flatten(2)
    B, _, M = gs.shape
    total = torch.zeros((), dtype=torch.float64)
    grad = torch.zeros_like(gs)
    for b in range(B):
        for i in range(0, M, block):
            # rows i:i+block of D = S_s - S_t
            d = (gs[b, :, i:i + block].T @ gs[b] -
                 gt[b, :, i:i + block].T @ gt[b])
            total += d.pow(2).sum()
            grad[b, :, i:i + block] = gs[b] @ d.T  # (G D)[:, rows], D sym.
    scale = M * M * B
    grad = 4 * grad / scale / ns.flatten(2)
    return (total / scale).item(), grad.view_as(fs)


def accuracy(args):
    import torch

    from mmkd.models.losses import PairWiseLoss
    torch.set_num_threads(1)
    records = []
    for size in args.sizes:
        h, w = map(int, size.split('x'))
        for regime in ('relu', 'cos99', 'converged', 'converged-cos1'):
            fs, ft = make_features(regime, args.batch, args.channels_s,
                                   args.channels_t, h, w)
            ref, ref_grad = reference(fs, ft)
            # mean cosine of two distinct teacher positions
            g = ft.double() / (ft.double().norm(dim=1, keepdim=True) + 1e-8)
            g, m = g.flatten(2), h * w
            mean_cos_t = ((g.sum(-1).pow(2).sum(1) - m) / (m * (m - 1))).mean()
            for name, kwargs in METHODS.items():
                x = fs.clone().requires_grad_(True)
                start = time.perf_counter()
                loss = PairWiseLoss(pool='none', **kwargs)(x, ft)
                loss.backward()
                seconds = time.perf_counter() - start
                rec = dict(
                    kind='accuracy', size=size, regime=regime, method=name,
                    batch=args.batch, channels_s=args.channels_s,
                    channels_t=args.channels_t,
                    teacher_mean_cosine=mean_cos_t.item(), reference=ref,
                    loss=loss.item(),
                    value_rel_err=abs(loss.item() - ref) / ref,
                    grad_rel_err=((x.grad.double() - ref_grad).norm() /
                                  ref_grad.norm()).item(),
                    seconds=seconds,
                    time=time.strftime('%Y-%m-%d %H:%M:%S'))
                print(json.dumps(rec), flush=True)
                records.append(rec)
    return records


def cost(args):
    records = []
    for size in args.sizes:
        h, w = map(int, size.split('x'))
        n = h * w
        # two N x N float32 similarity matrices, their difference and grads
        naive_gb = 4 * args.batch * n * n * 4 / 2**30
        for name, kwargs in METHODS.items():
            rec = dict(kind='cost', size=size, n=n, method=name,
                       batch=args.batch, channels_s=args.channels_s,
                       channels_t=args.channels_t,
                       threads=os.environ.get('OMP_NUM_THREADS'))
            if name == 'naive' and naive_gb > args.naive_limit_gb:
                rec['skipped'] = (f'needs about {naive_gb:.0f} GiB '
                                  f'(> {args.naive_limit_gb} GiB)')
            else:
                rec.update(run_case(args.batch, args.channels_s,
                                    args.channels_t, h, w, kwargs,
                                    args.repeats))
            rec['time'] = time.strftime('%Y-%m-%d %H:%M:%S')
            print(json.dumps(rec), flush=True)
            records.append(rec)
    return records


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--sizes', nargs='+', default=None)
    parser.add_argument('--channels-s', type=int, default=128)
    parser.add_argument('--channels-t', type=int, default=512)
    parser.add_argument('--batch', type=int, default=None,
                        help='1 for cost, 2 for accuracy by default')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--naive-limit-gb', type=float, default=8.0)
    parser.add_argument('--accuracy', action='store_true',
                        help='measure accuracy instead of cost')
    parser.add_argument(
        '--out', default='work_dirs/benchmark/pairwise.jsonl')
    args = parser.parse_args()
    if args.accuracy:
        args.sizes = args.sizes or ['64x64']
        args.batch = args.batch or 2
        records = accuracy(args)
    else:
        args.sizes = args.sizes or ['64x64', '128x128', '128x256']
        args.batch = args.batch or 1
        records = cost(args)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'a') as f:
        for rec in records:
            f.write(json.dumps(rec) + '\n')


if __name__ == '__main__':
    main()
