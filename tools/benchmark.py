"""Training-step cost of a distiller against its floor, side by side.

For one config it times, interleaved in one process on the same synthetic
batch (so machine noise hits every mode alike):

- ``distiller``: one full training step of the distiller (``train_step``:
  forward, backward, optimizer step(s); the critic step too for SKD);
- ``floor``: what any implementation must compute: the student's own
  training step plus the teacher's forward without gradients (as far as
  the tapped features, like the distiller); for self-distillation it is the
  student's step alone;
- ``student``: the plain student's training step;
- ``teacher_full``: the teacher's complete forward (for reference);
- ``distiller_amp`` (``--amp``): the distiller's step with the config's
  ``--amp`` optimizer wrapper(s) (:func:`mmkd.utils.enable_amp`: bfloat16
  autocast without loss scaler on CPU; on CUDA MMEngine's
  ``AmpOptimWrapper``, float16 with its dynamic loss scaler), on the same
  model; with ``--amp-dtype float16 bfloat16`` one mode per dtype
  (``distiller_amp_float16``, ...), each with its own ``student_amp_*`` and
  ``floor_amp_*`` (the same steps under the same wrapper type and dtype), so
  that every precision has its ratios to its own floor and student;
- ``distiller_amp_teacher_bf16`` (``--amp --teacher-precision bf16``): the
  same with a second distiller whose teacher is built with
  ``precision='bf16'`` (``distiller_teacher_bf16`` without ``--amp``);
- ``distiller_compiled`` (``--compile``): ``train_step`` compiled by
  ``torch.compile`` as MMEngine's Runner does with ``compile=True``; the
  first call (the compilation) is timed apart.

It reports the median ms per iteration (on CPU also the process's CPU
time per iteration, ``cpu_ms_per_iter``, which other work on the cores
slows much less than the wall clock, and its ratio
``cpu_ratio_to_floor``; with ``--threads 1`` only: it sums all threads,
and idle OpenMP workers spin), the ratio of each iteration
(``ratios_to_floor_per_iter``), the ratios ``distiller / floor``
and ``distiller / student`` (``amp_ratios``: the same per ``--amp-dtype``),
each ``distiller*`` mode's time over the float32 step (``ratio_to_fp32``),
and the memory of each mode: on CUDA the peak allocation during the mode's
step (``torch.cuda.max_memory_allocated``, reset before it; everything the
process holds included) and, as ``step_memory_mb``, that peak less what was
allocated before the step (activations, gradients, temporaries); each timed
step is bracketed by ``torch.cuda.synchronize()``; on CPU the bytes of the
tensors autograd saves for the backward pass (the activation memory, which
is what grows with a method), plus the parameter and gradient memory.
Results are printed and written to ``--out`` (JSON, one record per run
appended).

``--amp-check`` (no config) answers in under a minute whether bfloat16
pays on this CPU: it times float32 and bfloat16-autocast training steps of
a small conv net (torchvision's ResNet-18 with the CIFAR stem, 10 classes,
32x32, batch 32),
interleaved, and prints their ratio with the CPU's model name, its
``avx512_bf16`` / AMX flags, torch's oneDNN version and the kernel oneDNN
picks for a bfloat16 convolution, and a recommendation (``--amp`` or
float32).

Usage:
    python tools/benchmark.py CONFIG [--batch-size 32] [--input-size 32 32]
        [--iters 20] [--warmup 3] [--random-teacher] [--out FILE]
        [--device auto|cpu|cuda] [--amp [--amp-dtype float16 bfloat16]]
        [--teacher-precision bf16|fp32|fp16] [--teacher-channels-last]
        [--compile] [--modes distiller distiller_amp ...]
    python tools/benchmark.py --amp-check [--threads 1]
"""
import argparse
import copy
import json
import os
import os.path as osp
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager

import torch
from mmengine.config import Config, DictAction
from mmengine.optim import (OptimWrapper, OptimWrapperDict,
                            build_optim_wrapper)
from mmengine.registry import init_default_scope


def parse_args():
    parser = argparse.ArgumentParser(description='Benchmark a distiller')
    parser.add_argument('config', nargs='?')
    parser.add_argument(
        '--amp-check',
        action='store_true',
        help='no config: time float32 vs bfloat16 steps of a small conv net '
        'on this CPU and say whether --amp pays here')
    parser.add_argument(
        '--device',
        choices=['auto', 'cpu', 'cuda'],
        default='auto',
        help='auto: cuda when available')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument(
        '--input-size', type=int, nargs=2, default=None, metavar=('H', 'W'),
        help='input size (default: the probe size of the config or 224)')
    parser.add_argument('--iters', type=int, default=20)
    parser.add_argument(
        '--warmup', type=int, default=3,
        help='untimed iterations per mode (at least 1: the last one '
        'measures the memory)')
    parser.add_argument(
        '--random-teacher',
        action='store_true',
        help='use a randomly initialised teacher (timing does not depend '
        'on the weights) when no trained checkpoint is at hand')
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument(
        '--amp',
        action='store_true',
        help='also time the step with the --amp optimizer wrapper(s) '
        '(bfloat16 autocast on CPU, float16 with a loss scaler on CUDA)')
    parser.add_argument(
        '--amp-dtype',
        nargs='+',
        choices=['float16', 'bfloat16'],
        default=None,
        help='with --amp: one mode per dtype (float16 needs CUDA), each '
        'with its own student and floor modes')
    parser.add_argument(
        '--teacher-precision',
        choices=['bf16', 'fp32', 'fp16'],
        default=None,
        help='also time the step of a distiller whose teacher is built '
        'with this precision (with --amp: under autocast)')
    parser.add_argument(
        '--teacher-channels-last',
        action='store_true',
        help='with --teacher-precision: the teacher in channels-last too')
    parser.add_argument(
        '--compile',
        action='store_true',
        help='also time train_step compiled by torch.compile (MMEngine '
        'compile=True)')
    parser.add_argument(
        '--modes',
        nargs='+',
        default=None,
        help='time only these modes (default: all that apply); the ratios '
        'need distiller')
    parser.add_argument('--out', default='work_dirs/benchmark/results.jsonl')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args()
    if not args.amp_check and not args.config:
        parser.error('a CONFIG is required (or --amp-check)')
    return args


def library_of(model) -> str:
    return type(model).__module__.split('.')[0]


def make_batch(student, batch_size, channels, size):
    """A synthetic, already sized batch of the student's library."""
    h, w = size
    torch.manual_seed(0)
    inputs = [torch.rand(channels, h, w) * 255 for _ in range(batch_size)]
    lib = library_of(student)
    if lib == 'mmpretrain':
        from mmpretrain.structures import DataSample
        num_classes = getattr(student.head, 'num_classes', 10)
        samples = [
            DataSample().set_gt_label(i % num_classes)
            for i in range(batch_size)
        ]
    elif lib == 'mmdet':
        from mmdet.structures import DetDataSample
        from mmengine.structures import InstanceData
        samples = []
        for _ in range(batch_size):
            s = DetDataSample(metainfo=dict(
                img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w),
                scale_factor=(1.0, 1.0), batch_input_shape=(h, w)))
            xy = torch.rand(4, 2) * torch.tensor([w * 0.6, h * 0.6])
            wh = torch.rand(4, 2) * torch.tensor([w * 0.3, h * 0.3]) + 8
            s.gt_instances = InstanceData(
                bboxes=torch.cat([xy, xy + wh], 1),
                labels=torch.zeros(4, dtype=torch.long))
            samples.append(s)
    elif lib == 'mmseg':
        from mmengine.structures import PixelData
        from mmseg.structures import SegDataSample
        num_classes = student.decode_head.num_classes
        samples = []
        for _ in range(batch_size):
            s = SegDataSample(metainfo=dict(
                img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w)))
            s.gt_sem_seg = PixelData(
                data=torch.randint(0, num_classes, (1, h, w)))
            samples.append(s)
    else:
        raise ValueError(f'unsupported student library {lib!r}')
    return dict(inputs=inputs, data_samples=samples)


class SavedTensorMeter:
    """Bytes of the distinct tensors autograd saves for backward."""

    def __init__(self):
        self.storages = {}

    def pack(self, tensor):
        try:
            storage = tensor.untyped_storage()
            self.storages[storage.data_ptr()] = storage.nbytes()
        except (RuntimeError, NotImplementedError):
            pass
        return tensor

    @contextmanager
    def measure(self):
        self.storages = {}
        with torch.autograd.graph.saved_tensors_hooks(self.pack, lambda t: t):
            yield

    @property
    def mb(self):
        return sum(self.storages.values()) / 2**20


def param_mb(params):
    return sum(p.numel() * p.element_size() for p in params) / 2**20


def build(cfg, random_teacher: bool, teacher_options=None):
    """The distiller of ``cfg``; ``random_teacher``: the path of a random
    teacher checkpoint to use (``True`` writes a new one, kept in
    ``cfg.model.teacher.checkpoint`` for the next build)."""
    from mmkd.registry import MODELS
    model_cfg = copy.deepcopy(cfg.model)
    if 'data_preprocessor' in cfg and 'data_preprocessor' not in model_cfg:
        model_cfg['data_preprocessor'] = cfg.data_preprocessor
    teacher = model_cfg.get('teacher')
    if teacher and teacher_options:
        teacher.update(teacher_options)
    if random_teacher is True and teacher:
        from mmkd.models.utils import build_task_model, load_model_config
        if teacher.get('config'):
            tcfg = load_model_config(teacher['config'])
            tmodel = dict(tcfg.model, _scope_=tcfg.get('default_scope'))
        else:
            tmodel = teacher['model']
        ckpt = osp.join(tempfile.mkdtemp(), 'random_teacher.pth')
        torch.save({'state_dict': build_task_model(tmodel).state_dict()},
                   ckpt)
        teacher['checkpoint'] = ckpt
        cfg.model.teacher.checkpoint = ckpt
    return MODELS.build(model_cfg)


def zero_lr(optim_wrapper):
    """lr 0 everywhere: every mode pays for its optimizer step, but no mode
    changes the weights the others run with (a detector whose weights a
    real step moved can propose very different numbers of boxes)."""
    wrappers = (list(optim_wrapper.values()) if isinstance(
        optim_wrapper, OptimWrapperDict) else [optim_wrapper])
    for wrapper in wrappers:
        for group in wrapper.optimizer.param_groups:
            group['lr'] = 0.0
    return optim_wrapper


def amp_optim_wrapper(cfg, model, dtype=None, cuda=None):
    """The optimizer wrapper(s) ``tools/train.py --amp [--amp-dtype]``
    would build."""
    from mmkd.utils import enable_amp
    amp_cfg = copy.deepcopy(cfg)
    enable_amp(amp_cfg, dtype=dtype, cuda=cuda)
    return zero_lr(build_optim_wrapper(model, amp_cfg.optim_wrapper))


def student_optim_wrapper(model, dtype=None, cuda=None):
    """SGD (momentum 0.9, lr 0) for a plain student step; with ``dtype``
    under the ``--amp`` wrapper of that dtype."""
    from mmengine.config import Config
    cfg = Config(dict(optim_wrapper=dict(
        type='OptimWrapper', optimizer=dict(type='SGD', lr=0.0,
                                            momentum=0.9))))
    if dtype is None:
        return build_optim_wrapper(model, cfg.optim_wrapper)
    return amp_optim_wrapper(cfg, model, dtype, cuda)


def ratio(ms, a, b):
    return ms[a] / ms[b] if a in ms and b in ms else None


def per_iteration(times, a, b):
    """The ratios ``a / b`` of each iteration (rounded to 3 digits), or
    None without both modes."""
    if a not in times or b not in times:
        return None
    return [round(x / y, 3) for x, y in zip(times[a], times[b])]


def cpu_info() -> dict:
    """The CPU's model name and its bfloat16-related flags (Linux)."""
    info = dict(model_name=platform.processor() or platform.machine(),
                avx512_bf16=False, amx_bf16=False, amx_tile=False)
    try:
        with open('/proc/cpuinfo') as f:
            text = f.read()
    except OSError:
        return info
    for line in text.splitlines():
        key, _, value = line.partition(':')
        if key.strip() == 'model name':
            info['model_name'] = value.strip()
        elif key.strip() == 'flags':
            flags = set(value.split())
            for flag in ('avx512_bf16', 'amx_bf16', 'amx_tile'):
                info[flag] = flag in flags
            break
    return info


def onednn_info() -> dict:
    """torch's oneDNN version, and the ISA and kernel oneDNN reports for a
    bfloat16 convolution (``ONEDNN_VERBOSE=1`` in a child process)."""
    found = re.search(r'(?:oneDNN|MKL-DNN) (v[\d.]+)',
                      torch.__config__.show())
    version = found.group(1) if found else None
    code = ('import torch\n'
            'x = torch.rand(1, 16, 8, 8, dtype=torch.bfloat16)\n'
            'torch.nn.functional.conv2d(x, torch.rand(16, 16, 3, 3, '
            'dtype=torch.bfloat16))\n')
    out = subprocess.run([sys.executable, '-c', code],
                         capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, ONEDNN_VERBOSE='1')).stdout
    isa = next((line.split('isa:', 1)[1].strip()
                for line in out.splitlines() if 'isa:' in line), None)
    kernel = next((part for line in out.splitlines()
                   if ',exec,' in line and 'convolution' in line
                   for part in line.split(',') if ':' in part
                   and part.split(':')[0] in ('brg_conv_fwd', 'jit',
                                              'gemm', 'ref', 'brgconv',
                                              'jit_1x1', 'brdgmm')), None)
    return dict(onednn=version, onednn_isa=isa, bf16_conv_kernel=kernel)


def amp_check(args) -> None:
    """Time float32 and bfloat16-autocast training steps of a small conv
    net, interleaved, and say whether ``--amp`` pays on this CPU."""
    import torchvision
    threads = torch.get_num_threads()
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=10)
    # the CIFAR stem (as the papers' CIFAR ResNet-18): 32x32 maps in stage 1
    net.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    net.maxpool = torch.nn.Identity()
    net = net.train().to(memory_format=torch.channels_last)
    optim = torch.optim.SGD(net.parameters(), lr=0.0, momentum=0.9)
    x = torch.rand(args.batch_size, 3, 32, 32).contiguous(
        memory_format=torch.channels_last)
    y = torch.arange(args.batch_size) % 10

    def step(dtype):
        with torch.autocast('cpu', dtype=torch.bfloat16,
                            enabled=dtype == 'bfloat16'):
            loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        optim.step()
        optim.zero_grad()

    iters = min(args.iters, 6)
    times = dict(float32=[], bfloat16=[])
    for dtype in times:  # warm-up
        step(dtype)
    for _ in range(iters):
        for dtype in times:
            start = time.perf_counter()
            step(dtype)
            times[dtype].append((time.perf_counter() - start) * 1000)
    ms = {k: statistics.median(v) for k, v in times.items()}
    r = ms['bfloat16'] / ms['float32']
    if r < 0.9:
        advice = (f'use --amp: a bfloat16 step is {r:.2f}x the float32 '
                  f'step ({1 / r:.1f}x faster) here')
    elif r > 1.1:
        advice = (f'keep float32: a bfloat16 step is {r:.2f}x the float32 '
                  f'step ({r:.1f}x slower) here; --amp only halves the '
                  'activations\' memory')
    else:
        advice = (f'no clear gain ({r:.2f}x): keep float32 for speed; '
                  '--amp halves the activations\' memory')
    record = dict(
        kind='amp_check',
        **cpu_info(),
        **onednn_info(),
        torch=torch.__version__,
        threads=threads,
        model='ResNet-18 (torchvision, CIFAR stem: 3x3 conv, no max-pool), '
        '10 classes, 32x32, channels-last',
        batch_size=args.batch_size,
        iters=iters,
        ms_per_iter=ms,
        bf16_over_fp32=r,
        advice=advice,
        command=' '.join(['python'] + sys.argv),
        time=time.strftime('%Y-%m-%d %H:%M:%S'))
    print(json.dumps(record, indent=2))
    print(advice)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'a') as f:
        f.write(json.dumps(record) + '\n')


def main():
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.amp_check:
        return amp_check(args)
    from mmkd.utils import filter_known_warnings
    filter_known_warnings()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmkd'))
    device = args.device
    if device == 'auto':
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    cuda = device == 'cuda'
    if cuda and not torch.cuda.is_available():
        raise ValueError('--device cuda: torch sees no CUDA device')
    model = build(cfg, args.random_teacher).to(device).train()
    student = model.student

    probe = model.probe_input_shape if hasattr(
        model, 'probe_input_shape') else None
    channels = next(m.in_channels for m in student.modules()
                    if isinstance(m, torch.nn.Conv2d))
    size = tuple(args.input_size or (probe[1:] if probe else (224, 224)))
    data = make_batch(student, args.batch_size, channels, size)

    optim_wrapper = zero_lr(build_optim_wrapper(model, cfg.optim_wrapper))
    student_copy = copy.deepcopy(student)
    student_optim = OptimWrapper(
        torch.optim.SGD(student_copy.parameters(), lr=0.0, momentum=0.9))
    floor_optim = OptimWrapper(
        torch.optim.SGD(student.parameters(), lr=0.0, momentum=0.9))
    meter = SavedTensorMeter()

    def distiller_step():
        model.train_step(data, optim_wrapper)

    def student_step(net=student_copy, optim=student_optim):
        net.train_step(data, optim)

    def floor_step():
        if model.teacher is not None:
            batch = model.data_preprocessor(data, True)
            model.run_teacher(batch['inputs'], batch['data_samples'])
        student_step(student, floor_optim)

    def teacher_full():
        batch = model.data_preprocessor(data, True)
        with torch.no_grad():
            model.teacher(batch['inputs'], batch['data_samples'],
                          mode='tensor')

    modes = dict(distiller=distiller_step, floor=floor_step,
                 student=student_step)
    if model.teacher is not None:
        modes['teacher_full'] = teacher_full
    amp_dtypes = {}  # mode suffix -> dtype
    if args.amp:
        amp_dtypes = ({f'_{d}': d for d in args.amp_dtype}
                      if args.amp_dtype else {'': None})
    for suffix, dtype in amp_dtypes.items():
        amp_wrapper = amp_optim_wrapper(cfg, model, dtype, cuda)
        modes['distiller_amp' + suffix] = (
            lambda w=amp_wrapper: model.train_step(data, w))
        if dtype is None:
            continue
        s_wrapper = student_optim_wrapper(student_copy, dtype, cuda)
        f_wrapper = student_optim_wrapper(student, dtype, cuda)

        def floor_amp(w=f_wrapper):
            if model.teacher is not None:
                with w.optim_context(student):
                    batch = model.data_preprocessor(data, True)
                    model.run_teacher(batch['inputs'], batch['data_samples'])
            student_step(student, w)

        modes['student_amp' + suffix] = (
            lambda w=s_wrapper: student_step(student_copy, w))
        modes['floor_amp' + suffix] = floor_amp
    if args.teacher_precision:
        if model.teacher is None:
            raise ValueError('--teacher-precision: this distiller has no '
                             'teacher')
        other = build(
            cfg, args.random_teacher and cfg.model.teacher.checkpoint,
            dict(precision=args.teacher_precision,
                 channels_last=args.teacher_channels_last)).to(device)
        other.load_state_dict(model.state_dict())
        other.train()
        other_wrapper = (amp_optim_wrapper(
            cfg, other, (args.amp_dtype or [None])[0], cuda) if args.amp else
                         zero_lr(build_optim_wrapper(other,
                                                     cfg.optim_wrapper)))
        name = 'distiller' + ('_amp' if args.amp else '') + \
            f'_teacher_{args.teacher_precision}'
        modes[name] = lambda: other.train_step(data, other_wrapper)
    compile_ms = None
    if args.compile:
        compiled = torch.compile(model.train_step)
        start = time.perf_counter()
        compiled(data, optim_wrapper)
        compile_ms = (time.perf_counter() - start) * 1000
        print(f'torch.compile: first call {compile_ms / 1000:.1f} s')
        modes['distiller_compiled'] = lambda: compiled(data, optim_wrapper)
    if args.modes:
        unknown = set(args.modes) - set(modes)
        if unknown:
            raise ValueError(f'--modes: {sorted(unknown)} not among '
                             f'{sorted(modes)}')
        modes = {k: v for k, v in modes.items() if k in args.modes}

    def sync():
        if device == 'cuda':
            torch.cuda.synchronize()

    times = {name: [] for name in modes}
    cpu_times = {name: [] for name in modes}
    memory, step_memory = {}, {}
    for name, fn in modes.items():  # warm-up, mode by mode; the memory
        for _ in range(args.warmup - 1):  # on the last warm-up iteration
            fn()
        if device == 'cuda':
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            held = torch.cuda.memory_allocated()
        with meter.measure():
            fn()
        if device == 'cuda':
            torch.cuda.synchronize()
            step_memory[name] = (torch.cuda.max_memory_allocated() -
                                 held) / 2**20
        memory[name] = (torch.cuda.max_memory_allocated() / 2**20
                        if device == 'cuda' else meter.mb)
    for _ in range(args.iters):
        for name, fn in modes.items():
            sync()
            start, cpu_start = time.perf_counter(), time.process_time()
            fn()
            sync()
            times[name].append((time.perf_counter() - start) * 1000)
            cpu_times[name].append((time.process_time() - cpu_start) * 1000)

    ms = {name: statistics.median(v) for name, v in times.items()}
    cpu_ms = {name: statistics.median(v) for name, v in cpu_times.items()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    record = dict(
        config=args.config,
        device=device,
        device_name=(torch.cuda.get_device_name() if cuda else cpu_info()
                     ['model_name']),
        torch=torch.__version__,
        threads=torch.get_num_threads(),
        batch_size=args.batch_size,
        input_size=list(size),
        iters=args.iters,
        ms_per_iter=ms,
        ratio_to_floor=ratio(ms, 'distiller', 'floor'),
        # the process's CPU time (all its threads): on CPU, what the step
        # costs whatever else runs on the cores; per iteration, the ratio
        # of the step to the floor timed just before or after it
        cpu_ms_per_iter=cpu_ms if device == 'cpu' else None,
        cpu_ratio_to_floor=(ratio(cpu_ms, 'distiller', 'floor')
                            if device == 'cpu' else None),
        ratios_to_floor_per_iter=per_iteration(times, 'distiller', 'floor'),
        cpu_ratios_to_floor_per_iter=(per_iteration(
            cpu_times, 'distiller', 'floor') if device == 'cpu' else None),
        ratio_to_student=ratio(ms, 'distiller', 'student'),
        amp_ratios={
            dtype: dict(
                to_floor=ratio(ms, f'distiller_amp{sfx}', f'floor_amp{sfx}'),
                to_student=ratio(ms, f'distiller_amp{sfx}',
                                 f'student_amp{sfx}'),
                to_fp32=ratio(ms, f'distiller_amp{sfx}', 'distiller'))
            for sfx, dtype in amp_dtypes.items() if dtype is not None
        },
        ratio_to_fp32={
            name: ratio(ms, name, 'distiller')
            for name in ms if name.startswith('distiller_')
        },
        compile_first_call_ms=compile_ms,
        command=' '.join(['python'] + sys.argv),
        # settings that change step times from outside the command
        env={
            k: v
            for k, v in sorted(os.environ.items())
            if k.startswith(('OMP_', 'KMP_', 'GOMP_', 'MKL_', 'MALLOC_',
                             'GLIBC_', 'PYTORCH_', 'ONEDNN_', 'DNNL_'))
            or k == 'LD_PRELOAD'
        },
        memory_mb=memory,
        memory_kind=('cuda peak allocated' if device == 'cuda' else
                     'activations saved for backward'),
        step_memory_mb=step_memory or None,
        params_mb=dict(
            trainable=param_mb(trainable),
            student=param_mb(student.parameters()),
            teacher=param_mb(model.teacher.parameters())
            if model.teacher is not None else 0.0),
        time=time.strftime('%Y-%m-%d %H:%M:%S'))
    print(json.dumps(record, indent=2))
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'a') as f:
        f.write(json.dumps(record) + '\n')


if __name__ == '__main__':
    main()
