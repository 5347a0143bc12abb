"""A training step with a non-finite loss term or gradient changes nothing.

Real mmpretrain classifiers (tiny CIFAR ResNets) in a Distiller with a real
MMEngine OptimWrapper (SGD with momentum and weight decay), and a tiny mmseg
PSPNet pair in the AdversarialDistiller (SKD) with its two wrappers.
"""
import copy

import pytest
import torch
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope
from mmpretrain.structures import DataSample

from mmkd.models.distillers import NonFiniteLossError
from mmkd.registry import MODELS
from mmkd.testing.task_configs import kd_fitnet_distiller, skd_pixel_distiller

NAN = float('nan')


def distiller(teacher_ckpt, **kwargs):
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    cfg = kd_fitnet_distiller(teacher_ckpt)
    cfg.update(kwargs)
    return MODELS.build(cfg).train()


def batch(seed, n=4):
    g = torch.Generator().manual_seed(seed)
    return dict(
        inputs=[
            torch.randint(0, 256, (1, 16, 16), generator=g).float()
            for _ in range(n)
        ],
        data_samples=[DataSample().set_gt_label(i % 5) for i in range(n)])


def sgd(model):
    return OptimWrapper(
        torch.optim.SGD(
            model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4))


def state(model, *wrappers):
    """Every parameter, buffer and optimizer state, copied."""
    return dict(
        params={
            n: p.detach().clone()
            for n, p in model.named_parameters()
        },
        buffers={
            n: b.detach().clone()
            for n, b in model.named_buffers()
        },
        optim=[copy.deepcopy(w.optimizer.state_dict()) for w in wrappers])


def assert_same(a, b):
    for kind in ('params', 'buffers'):
        assert a[kind].keys() == b[kind].keys()
        for k in a[kind]:
            assert torch.equal(a[kind][k], b[kind][k]), (kind, k)
    for sa, sb in zip(a['optim'], b['optim']):
        assert sa['param_groups'] == sb['param_groups']
        assert sa['state'].keys() == sb['state'].keys()
        for i in sa['state']:
            for key, value in sa['state'][i].items():
                assert torch.equal(value, sb['state'][i][key]), (i, key)


def changed(a, b, kind='params'):
    return [k for k in a[kind] if not torch.equal(a[kind][k], b[kind][k])]


class Poison:
    """Forward hook multiplying a module's output by NaN while on (or, with
    ``grad=True``, leaving the output and making its gradient NaN)."""

    def __init__(self, module, grad=False):
        self.on = False
        self.grad = grad
        # before the taps, so that they record the poisoned output
        module.register_forward_hook(self, prepend=True)

    def __call__(self, module, args, output):
        if not self.on:
            return None
        if self.grad:
            output.register_hook(lambda g: g * NAN)
            return None
        return output * NAN


def test_nan_logits_step_changes_nothing_and_next_step_trains(
        teacher_ckpt, warnings):
    model = distiller(teacher_ckpt)
    ow = sgd(model)
    poison = Poison(model.student.head.fc)
    model.train_step(batch(0), ow)  # momentum buffers exist from here on
    before = state(model, ow)
    assert before['optim'][0]['state']  # momentum to protect

    poison.on = True
    log_vars = model.train_step(batch(1), ow)
    assert log_vars['nonfinite.skipped'] == 1
    assert log_vars['nonfinite.skipped_total'] == 1
    assert torch.isnan(log_vars['student.loss'])
    assert_same(before, state(model, ow))  # BN running stats included
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())
    msg, = [w for w in warnings if 'non-finite' in w]
    assert 'student.loss=nan' in msg and 'distill.loss_kd=nan' in msg
    assert 'loss_fitnet' not in msg  # its features are before the logits

    poison.on = False
    log_vars = model.train_step(batch(1), ow)
    assert 'nonfinite.skipped' not in log_vars
    after = state(model, ow)
    assert changed(before, after) and changed(before, after, 'buffers')
    assert model.guard.consecutive == 0 and model.guard.skipped_total == 1
    for p in model.parameters():
        assert torch.isfinite(p).all()


def test_good_step_equals_mmengine_update(teacher_ckpt):
    """On finite steps the guarded step is MMEngine's train step."""
    model = distiller(teacher_ckpt)
    twin = copy.deepcopy(model)
    ow, ow_twin = sgd(model), sgd(twin)
    for seed in range(2):
        model.train_step(batch(seed), ow)
        # MMEngine's BaseModel.train_step, by hand
        with ow_twin.optim_context(twin):
            data = twin.data_preprocessor(batch(seed), True)
            losses = twin._run_forward(data, mode='loss')
        parsed, _ = twin.parse_losses(losses)
        ow_twin.update_params(parsed)
    a, b = state(model, ow), state(twin, ow_twin)
    for kind in ('params', 'buffers'):
        for k in a[kind]:
            torch.testing.assert_close(a[kind][k], b[kind][k])


def test_nonfinite_gradient_skips_the_step(teacher_ckpt, warnings):
    model = distiller(teacher_ckpt)
    ow = sgd(model)
    # finite loss, NaN gradient into layer3's output
    poison = Poison(model.student.backbone.layer3, grad=True)
    model.train_step(batch(0), ow)
    before = state(model, ow)
    count = ow._inner_count

    poison.on = True
    log_vars = model.train_step(batch(1), ow)
    assert torch.isfinite(log_vars['loss'])
    assert log_vars['nonfinite.skipped'] == 1
    assert_same(before, state(model, ow))
    assert ow._inner_count == count
    msg, = [w for w in warnings if 'non-finite' in w]
    assert 'gradient' in msg and 'grad of student.backbone' in msg


def test_consecutive_skips_stop_training_with_the_terms(teacher_ckpt):
    model = distiller(teacher_ckpt, max_consecutive_nonfinite=3)
    ow = sgd(model)
    poison = Poison(model.student.head.fc)
    poison.on = True
    for _ in range(2):
        assert model.train_step(batch(0), ow)['nonfinite.skipped'] == 1
    poison.on = False
    model.train_step(batch(0), ow)  # a good step resets the run
    poison.on = True
    for _ in range(2):
        model.train_step(batch(0), ow)
    with pytest.raises(
            NonFiniteLossError,
            match=r'3 training steps in a row.*student\.loss.*'
            r'distill\.loss_kd'):
        model.train_step(batch(0), ow)
    assert model.guard.skipped_total == 5
    with pytest.raises(ValueError, match='max_consecutive_nonfinite'):
        distiller(teacher_ckpt, max_consecutive_nonfinite=0)


def test_autocast_wrapper_bf16(teacher_ckpt):
    """The lead's CPU bfloat16 wrapper (no loss scaler): non-finite losses
    are caught as with the plain wrapper."""
    from mmkd.registry import OPTIM_WRAPPERS
    try:
        wrapper_cls = OPTIM_WRAPPERS.get('AutocastOptimWrapper')
    except Exception:
        wrapper_cls = None
    if wrapper_cls is None:
        pytest.skip('mmkd has no AutocastOptimWrapper')
    model = distiller(teacher_ckpt)
    ow = wrapper_cls(
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    poison = Poison(model.student.head.fc)
    model.train_step(batch(0), ow)
    before = state(model, ow)
    poison.on = True
    assert model.train_step(batch(1), ow)['nonfinite.skipped'] == 1
    assert_same(before, state(model, ow))
    poison.on = False
    model.train_step(batch(1), ow)
    assert changed(before, state(model, ow))


def test_loss_scaler_overflow_is_not_counted(teacher_ckpt):
    """With a loss scaler (AmpOptimWrapper semantics: a GradScaler skips
    steps whose scaled gradients overflow and lowers the scale), an
    overflowing gradient is the scaler's business: not a skipped step."""
    from mmkd.models.distillers.nonfinite_guard import has_loss_scaler
    model = distiller(teacher_ckpt)
    ow = sgd(model)
    ow.loss_scaler = torch.amp.GradScaler('cpu', init_scale=2.**16)
    # mmengine's AmpOptimWrapper backward / step, on this CPU wrapper
    ow.backward = lambda loss, **kw: (ow.loss_scaler.scale(loss).backward(
    ), setattr(ow, '_inner_count', ow._inner_count + 1))
    ow.step = lambda **kw: (ow.loss_scaler.step(ow.optimizer),
                            ow.loss_scaler.update())
    assert has_loss_scaler(ow)
    poison = Poison(model.student.backbone.layer3, grad=True)
    model.train_step(batch(0), ow)
    before = state(model, ow)
    scale = ow.loss_scaler.get_scale()
    poison.on = True
    log_vars = model.train_step(batch(1), ow)
    assert 'nonfinite.skipped' not in log_vars
    assert model.guard.skipped_total == 0
    assert ow.loss_scaler.get_scale() == scale / 2  # the scaler's skip
    assert not changed(before, state(model, ow))  # optimizer not stepped
    # a NaN loss term is still caught before the scaler sees it
    poison.grad = False
    assert model.train_step(batch(1), ow)['nonfinite.skipped'] == 1
    assert ow.loss_scaler.get_scale() == scale / 2


def test_nan_gradient_at_every_scale_stops_under_a_loss_scaler(
        teacher_ckpt, warnings):
    """A gradient that stays NaN whatever the scale: the scaler's skips are
    its own while the scale stays >= min_loss_scale (1); below it they are
    the guard's skips (counted, buffers restored) and training stops after
    max_consecutive_nonfinite of them in a row instead of halving the scale
    for ever."""
    model = distiller(teacher_ckpt, max_consecutive_nonfinite=2)
    ow = sgd(model)
    ow.loss_scaler = torch.amp.GradScaler('cpu', init_scale=4.0)
    ow.backward = lambda loss, **kw: (ow.loss_scaler.scale(loss).backward(
    ), setattr(ow, '_inner_count', ow._inner_count + 1))
    ow.step = lambda **kw: (ow.loss_scaler.step(ow.optimizer),
                            ow.loss_scaler.update())
    Poison(model.student.backbone.layer3, grad=True).on = True
    before = state(model, ow)
    for scale in (2.0, 1.0):  # the scaler's own skips: 4 -> 2 -> 1
        assert 'nonfinite.skipped' not in model.train_step(batch(0), ow)
        assert ow.loss_scaler.get_scale() == scale
    assert model.guard.skipped_total == 0
    assert not changed(before, state(model, ow))  # no optimizer step
    # (the scaler's own skips leave the BN statistics of their forward)
    before = state(model, ow)
    log_vars = model.train_step(batch(0), ow)  # 1 -> 0.5: the guard's skip
    assert log_vars['nonfinite.skipped'] == 1
    assert_same(before, state(model, ow))  # buffers restored too
    assert 'loss scale 0.5' in warnings[-1]
    with pytest.raises(NonFiniteLossError, match='loss scale 0.25'):
        model.train_step(batch(0), ow)


def test_ddp_wrapper_runs_the_guarded_step(teacher_ckpt, tmp_path):
    """Under mmkd's DDP wrapper (one gloo process) the forward goes through
    DDP and the guard still skips the poisoned step."""
    import torch.distributed as torch_dist

    from mmkd.models.distillers import DistillerDistributedDataParallel
    model = distiller(teacher_ckpt)
    torch_dist.init_process_group(
        'gloo', init_method=f'file://{tmp_path}/pg', rank=0, world_size=1)
    try:
        wrapped = DistillerDistributedDataParallel(
            module=model, device_ids=None, broadcast_buffers=False)
        forwards = []
        wrapped.register_forward_pre_hook(lambda *a: forwards.append(1))
        ow = sgd(wrapped)
        poison = Poison(model.student.head.fc)
        wrapped.train_step(batch(0), ow)
        assert forwards == [1]  # through DDP
        before = state(model, ow)
        poison.on = True
        assert wrapped.train_step(batch(1), ow)['nonfinite.skipped'] == 1
        assert_same(before, state(model, ow))
        poison.on = False
        wrapped.train_step(batch(1), ow)
        assert changed(before, state(model, ow))
    finally:
        torch_dist.destroy_process_group()


def test_ddp_wrapper_refuses_the_adversarial_distiller():
    from mmengine.model import MMDistributedDataParallel

    from mmkd.models.distillers import (AdversarialDistiller,
                                        DistillerDistributedDataParallel)
    model = AdversarialDistiller.__new__(AdversarialDistiller)
    with pytest.raises(TypeError, match='MMSeparateDistributedDataParallel'):
        DistillerDistributedDataParallel(module=model)
    assert issubclass(DistillerDistributedDataParallel,
                      MMDistributedDataParallel)


# --------------------------------------------------------------------------
# AdversarialDistiller (SKD): the critic's BN statistics too
# --------------------------------------------------------------------------
SEG = 64


def skd(ckpt, **kwargs):
    init_default_scope('mmseg')
    torch.manual_seed(0)
    cfg = skd_pixel_distiller(ckpt, SEG)
    cfg.update(kwargs)
    return MODELS.build(cfg).train()


def seg_batch(seed, n=2):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for _ in range(n):
        inputs.append(
            torch.randint(0, 256, (3, SEG, SEG), generator=g).to(torch.uint8))
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(
            data=torch.randint(0, 3, (1, SEG, SEG), generator=g))
        sample.set_metainfo(
            dict(
                img_shape=(SEG, SEG),
                ori_shape=(SEG, SEG),
                pad_shape=(SEG, SEG)))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def skd_wrappers(model):
    from mmkd.registry import OPTIM_WRAPPER_CONSTRUCTORS
    sgd_cfg = dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4)
    return OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(
            type='mmkd.DistillerOptimWrapperConstructor',
            optim_wrapper_cfg=dict(
                student=dict(optimizer=sgd_cfg),
                critic=dict(optimizer=sgd_cfg))))(
                    model)


def test_adversarial_nan_step_changes_nothing_critic_included(
        seg_teacher_ckpt, warnings):
    model = skd(seg_teacher_ckpt)
    ow = skd_wrappers(model)
    poison = Poison(model.student.decode_head.conv_seg)
    model.train_step(seg_batch(0), ow)
    before = state(model, ow['student'], ow['critic'])
    assert before['optim'][1]['state']  # the critic's momentum
    critic_bn = model.critic.preprocess.running_mean.clone()

    poison.on = True
    log_vars = model.train_step(seg_batch(1), ow)
    assert log_vars['nonfinite.skipped'] == 1
    assert log_vars['critic.skipped'] == 1
    # student, critic (BN running stats, spectral-norm vectors), both
    # optimizers: as before the step
    assert_same(before, state(model, ow['student'], ow['critic']))
    assert torch.equal(model.critic.preprocess.running_mean, critic_bn)
    msg, = [w for w in warnings if 'non-finite loss' in w]
    assert 'decode.loss_ce=nan' in msg and 'distill.loss_holistic' in msg

    poison.on = False
    log_vars = model.train_step(seg_batch(1), ow)
    assert log_vars['critic.skipped'] == 0
    after = state(model, ow['student'], ow['critic'])
    assert changed(before, after)
    assert not torch.equal(model.critic.preprocess.running_mean, critic_bn)
    assert model.guard.consecutive == 0


def test_adversarial_consecutive_skips_raise(seg_teacher_ckpt):
    model = skd(seg_teacher_ckpt, max_consecutive_nonfinite=2)
    ow = skd_wrappers(model)
    Poison(model.student.decode_head.conv_seg).on = True
    model.train_step(seg_batch(0), ow)
    with pytest.raises(
            NonFiniteLossError,
            match=r'2 training steps in a row.*decode\.loss_ce'):
        model.train_step(seg_batch(0), ow)


def _two_rank_worker(rank, init_file, ckpt, out_dir):
    """One rank: NaN logits on rank 1 only at the second step."""
    import torch.distributed as torch_dist

    from mmkd.models.distillers import DistillerDistributedDataParallel
    torch.set_num_threads(1)
    torch_dist.init_process_group(
        'gloo', init_method=f'file://{init_file}', rank=rank, world_size=2)
    try:
        model = distiller(ckpt)
        wrapped = DistillerDistributedDataParallel(
            module=model, device_ids=None, broadcast_buffers=False)
        ow = sgd(wrapped)
        poison = Poison(model.student.head.fc)
        logs = [wrapped.train_step(batch(rank), ow)]
        before = state(model, ow)
        poison.on = rank == 1
        logs.append(wrapped.train_step(batch(10 + rank), ow))
        same = True
        try:
            assert_same(before, state(model, ow))
        except AssertionError:
            same = False
        poison.on = False
        logs.append(wrapped.train_step(batch(20 + rank), ow))
        torch.save(
            dict(
                skipped=[
                    float(log.get('nonfinite.skipped', 0)) for log in logs
                ],
                unchanged_when_skipped=same,
                params=state(model, ow)['params']),
            f'{out_dir}/rank{rank}.pth')
    finally:
        torch_dist.destroy_process_group()


def test_two_processes_skip_the_same_steps(teacher_ckpt, tmp_path):
    """A NaN on one rank only: both ranks skip that step (the decision is
    all-reduced), neither changes, and they stay identical after the next
    (good) step."""
    import torch.multiprocessing as mp
    mp.start_processes(
        _two_rank_worker,
        args=(str(tmp_path / 'pg'), teacher_ckpt, str(tmp_path)),
        nprocs=2,
        start_method='fork')
    r0, r1 = (torch.load(tmp_path / f'rank{r}.pth') for r in (0, 1))
    assert r0['skipped'] == r1['skipped'] == [0., 1., 0.]
    assert r0['unchanged_when_skipped'] and r1['unchanged_when_skipped']
    for k in r0['params']:
        torch.testing.assert_close(r0['params'][k], r1['params'][k])
