"""Mixed precision on CUDA with MMEngine's ``AmpOptimWrapper`` (what
``tools/train.py --amp`` builds there), on the shipped classification
config of every distiller kind: float16 with the dynamic loss scaler, and
bfloat16. The non-finite guard must leave overflowing steps to the scaler
(skipped by it, the scale lowered, nothing counted by the guard) and still
skip a step whose loss itself is not finite."""
import copy

import pytest
import torch
from mmengine.optim import build_optim_wrapper
from torch import nn

from mmkd.utils import enable_amp

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        not torch.cuda.is_available(), reason='needs a CUDA device')
]
KINDS = ['kd', 'dkd', 'reviewkd', 'frskd']


def amp_wrapper(cfg, model, dtype=None, loss_scale=None):
    cfg = copy.deepcopy(cfg)
    if loss_scale is not None:
        cfg.optim_wrapper.loss_scale = loss_scale
    enable_amp(cfg, dtype=dtype, cuda=True)
    return build_optim_wrapper(model, cfg.optim_wrapper)


def params(model):
    return {
        n: p.detach().clone()
        for n, p in model.named_parameters() if p.requires_grad
    }


def buffers(model):
    return {n: b.detach().clone() for n, b in model.named_buffers()}


def changed(before, after):
    return [k for k in before if not torch.equal(before[k], after[k])]


def first_conv_dtypes(model):
    """Record the dtype of the student's first convolution's output."""
    seen = []
    conv = next(m for m in model.student.modules()
                if isinstance(m, nn.Conv2d))
    handle = conv.register_forward_hook(
        lambda module, args, out: seen.append(out.dtype))
    return seen, handle


@pytest.mark.parametrize('kind', KINDS)
def test_float16_step_trains(kind, make_distiller, make_batch):
    """The first step that the scaler does not skip moves the weights; a
    step before it can only be the scaler's own overflow skip (scale
    halved), never a guard skip."""
    cfg, model = make_distiller(kind)
    model = model.cuda().train()
    ow = amp_wrapper(cfg, model)
    assert type(ow).__name__ == 'AmpOptimWrapper'
    # dtype None: autocast's CUDA default, float16 (checked below)
    assert ow.cast_dtype in (None, torch.float16)
    assert ow.loss_scaler.is_enabled()
    data = make_batch(model)
    seen, handle = first_conv_dtypes(model)
    for _ in range(10):
        before, scale = params(model), ow.loss_scaler.get_scale()
        log_vars = model.train_step(data, ow)
        assert 'nonfinite.skipped' not in log_vars
        assert all(
            torch.isfinite(torch.as_tensor(v)).all()
            for k, v in log_vars.items() if 'loss' in k)
        if changed(before, params(model)):
            break
        assert ow.loss_scaler.get_scale() == scale / 2
    else:
        pytest.fail('10 float16 steps in a row did not change the weights')
    handle.remove()
    assert set(seen) == {torch.float16}  # the student computes in fp16
    assert any(k.startswith('distill.') for k in log_vars)
    assert model.guard.skipped_total == 0
    # parameters and their optimizer state stay float32 (on the GPU)
    for p in model.parameters():
        assert p.dtype == torch.float32 and p.is_cuda
    for state in ow.optimizer.state.values():
        for v in state.values():
            if torch.is_tensor(v) and v.is_floating_point():
                assert v.dtype == torch.float32


def test_overflow_is_the_scalers_skip_not_the_guards(make_distiller,
                                                     make_batch):
    """Start at a loss scale of 2**40: every float16 backward overflows
    until the scaler has halved the scale far enough. Those steps change
    no weight and no optimizer state, are not counted by the guard, and
    more of them in a row than ``max_consecutive_nonfinite`` do not stop
    training; the scale state is in the wrapper's checkpoint."""
    cfg, model = make_distiller('dkd')
    model = model.cuda().train()
    model.guard.max_consecutive = 2
    ow = amp_wrapper(cfg, model, loss_scale=dict(init_scale=2.**40))
    data = make_batch(model)
    skips = 0
    while True:
        before, scale = params(model), ow.loss_scaler.get_scale()
        log_vars = model.train_step(data, ow)
        assert 'nonfinite.skipped' not in log_vars
        assert model.guard.skipped_total == 0 and model.guard.consecutive == 0
        if changed(before, params(model)):
            break
        assert ow.loss_scaler.get_scale() == scale / 2  # backed off
        assert not ow.optimizer.state  # SGD's momentum never created
        skips += 1
        assert skips < 40, 'the scaler never stopped skipping'
    assert skips > model.guard.max_consecutive
    assert ow.loss_scaler.get_scale() == 2.**(40 - skips)
    assert ow.optimizer.state  # the applied step made the momentum

    # the scaler's state is in the wrapper's checkpoint and loads back
    state = ow.state_dict()
    assert state['loss_scaler']['scale'] == 2.**(40 - skips)
    fresh = amp_wrapper(cfg, model)
    assert fresh.loss_scaler.get_scale() == 2.**16
    fresh.load_state_dict(copy.deepcopy(state))
    assert fresh.loss_scaler.get_scale() == 2.**(40 - skips)
    assert fresh.loss_scaler.state_dict() == ow.loss_scaler.state_dict()


def test_nonfinite_loss_is_the_guards_skip_not_the_scalers(
        make_distiller, make_batch):
    """A NaN input makes the loss NaN in the forward: the guard skips the
    step before the backward (weights, BN statistics and optimizer state
    unchanged, counted once) and the scaler never sees it (scale kept)."""
    cfg, model = make_distiller('kd')
    model = model.cuda().train()
    ow = amp_wrapper(cfg, model, loss_scale=dict(init_scale=2.**10))
    model.train_step(make_batch(model, seed=1), ow)  # momentum exists
    bad = make_batch(model, seed=2)
    bad['inputs'][0][0, 0, 0] = float('nan')
    before, bufs = params(model), buffers(model)
    scale = ow.loss_scaler.get_scale()
    optim_before = copy.deepcopy(ow.optimizer.state_dict())
    log_vars = model.train_step(bad, ow)
    assert log_vars['nonfinite.skipped'] == 1
    assert model.guard.skipped_total == 1
    assert ow.loss_scaler.get_scale() == scale
    assert not changed(before, params(model))
    assert not changed(bufs, buffers(model))
    for i, st in ow.optimizer.state_dict()['state'].items():
        for k, v in st.items():
            assert torch.equal(v, optim_before['state'][i][k])
    log_vars = model.train_step(make_batch(model, seed=3), ow)
    assert 'nonfinite.skipped' not in log_vars
    assert model.guard.consecutive == 0 and model.guard.skipped_total == 1


def test_bfloat16_autocast_step(make_distiller, make_batch):
    """``--amp --amp-dtype bfloat16`` on CUDA: the student computes in
    bfloat16, its losses are those of float32 to bfloat16's precision, the
    step moves the float32 weights."""
    cfg, model = make_distiller('kd')
    model = model.cuda().train()
    data = make_batch(model)
    with torch.no_grad():
        fp32 = model.loss(**model.data_preprocessor(copy.deepcopy(data),
                                                    True))
    ow = amp_wrapper(cfg, model, dtype='bfloat16')
    assert type(ow).__name__ == 'AmpOptimWrapper'
    assert ow.cast_dtype == torch.bfloat16
    seen, handle = first_conv_dtypes(model)
    before = params(model)
    log_vars = model.train_step(data, ow)
    handle.remove()
    assert seen == [torch.bfloat16]
    assert 'nonfinite.skipped' not in log_vars
    for key in ('student.loss', 'distill.loss_kd'):
        torch.testing.assert_close(
            torch.as_tensor(log_vars[key]).float().cpu(),
            fp32[key].float().cpu(), rtol=5e-2, atol=1e-3)
    assert changed(before, params(model))
    assert all(p.dtype == torch.float32 for p in model.parameters())
