"""The training step shared by every distiller
(``Distiller.guarded_train_step``) and its parts: the probe, the graph's
outputs, the critic step plugged in after the student's update with a guard
of its own, and the guard under a loss scaler.

Real mmpretrain classifiers (tiny CIFAR ResNets) and a tiny mmseg PSPNet pair
with SKD's critic; real MMEngine optimizer wrappers; a real ``GradScaler`` on
the CPU inside MMEngine's ``AmpOptimWrapper`` (whose ``__init__`` refuses a
machine without an accelerator, so only that is replaced).
"""
import copy

import pytest
import torch
from mmengine.optim import AmpOptimWrapper, OptimWrapper

from mmkd.models.distillers import NonFiniteLossError, TapError
# builders shared with the guard's tests (this folder is on sys.path)
from test_nonfinite_guard import (batch, distiller, seg_batch,  # noqa: E402
                                  skd, skd_wrappers)

NAN = float('nan')


# --------------------------------------------------------------- builders
def copied(module):
    return {
        n: t.detach().clone()
        for n, t in list(module.named_parameters()) +
        list(module.named_buffers())
    }


def same(a, b):
    assert a.keys() == b.keys()
    return all(torch.equal(a[k], b[k]) for k in a)


def optim_state(ow):
    return copy.deepcopy(ow.optimizer.state_dict())


def same_optim_state(a, b):
    assert a['param_groups'] == b['param_groups']
    assert a['state'].keys() == b['state'].keys()
    return all(
        torch.equal(v, b['state'][i][k]) for i in a['state']
        for k, v in a['state'][i].items())


# ------------------------------------------------------------ the probe
def test_the_probe_runs_for_every_distiller(teacher_ckpt):
    # no connector, no loss: the taps are still probed and checked
    model = distiller(teacher_ckpt, connectors=None, losses=None)
    assert model.probe_input_shape == (1, 16, 16)
    assert model.probe_shapes == {
        's_logits': (2, 5),
        't_logits': (2, 5),
        's3': (2, 16, 4, 4),
        't3': (2, 32, 4, 4)
    }
    # so a tap that never runs fails at build, with or without losses
    with pytest.raises(TapError, match="tap 's_pre'.*did not run"):
        distiller(
            teacher_ckpt,
            connectors=None,
            losses=None,
            taps=dict(s_pre='student.head.loss_module'))


# -------------------------------------------------------- graph outputs
def test_graph_returns_what_it_computes_and_leaves_values_alone(teacher_ckpt):
    model = distiller(teacher_ckpt).eval()
    data = model.data_preprocessor(batch(0), False)
    with torch.no_grad():
        values, _ = model._record(data['inputs'], data['data_samples'],
                                  'tensor')
        keys = set(values)
        losses, outputs = model.graph.compute_losses(values,
                                                     data['data_samples'])
        assert set(values) == keys  # nothing added behind the caller's back
        assert set(outputs) == {'hint'}
        assert set(losses) == {'distill.loss_kd', 'distill.loss_fitnet'}
        expected = model.connectors['hint'](values['s3'])
        torch.testing.assert_close(outputs['hint'], expected)
        assert model.graph.shapes['hint'] == (2, 32, 4, 4)
        features = model.extract_features(data['inputs'], data['data_samples'])
    assert set(features) == keys | {'hint'}
    torch.testing.assert_close(features['hint'], expected)


def test_critic_input_may_be_a_connector_output(seg_teacher_ckpt):
    """A connector output feeds the critic: its channels are inferred
    through the graph, and the critic step gets it, detached."""
    model = skd(
        seg_teacher_ckpt,
        connectors=dict(
            s_proj=dict(
                type='ConvConnector', inputs='s_logits', targets='t_logits')),
        critic_inputs=dict(preds_S='s_proj', preds_T='t_logits'))
    assert model.critic.in_channels == 3
    outputs, critic_inputs = [], []
    model.connectors['s_proj'].register_forward_hook(
        lambda m, a, out: outputs.append(out.detach().clone()))
    model.critic_loss.register_forward_pre_hook(
        lambda m, args: critic_inputs.append(args[1]))
    log_vars = model.train_step(seg_batch(0), skd_wrappers(model))
    assert log_vars['critic.skipped'] == 0
    (preds_S, ) = critic_inputs
    assert not preds_S.requires_grad
    torch.testing.assert_close(preds_S, outputs[0])
    with pytest.raises(ValueError, match='same shape'):
        skd(seg_teacher_ckpt,
            connectors=dict(
                s_wide=dict(
                    type='ConvConnector', inputs='s_logits', out_channels=5)),
            critic_inputs=dict(preds_S='s_wide', preds_T='t_logits'))


# ----------------------------------------------------- the critic's guard
def test_critic_guard_counts_its_own_skips_and_stops_at_its_limit(
        seg_teacher_ckpt, warnings):
    model = skd(seg_teacher_ckpt, max_consecutive_nonfinite=3)
    ow = skd_wrappers(model)

    def step(seed, finite):
        model.critic_loss.lambda_gp = 10.0 if finite else float('inf')
        return model.train_step(seg_batch(seed), ow)

    for i in range(2):
        log_vars = step(i, finite=False)
        assert log_vars['critic.skipped'] == 1
        assert log_vars['critic.nonfinite.skipped'] == 1
        assert log_vars['critic.nonfinite.skipped_total'] == i + 1
        assert 'nonfinite.skipped' not in log_vars  # the student trained
        assert model.critic_guard.consecutive == i + 1
    assert model.guard.skipped_total == 0
    msg = [w for w in warnings if 'non-finite critic' in w][-1]
    assert 'critic.loss_gp=inf' in msg and 'critic step is skipped' in msg
    assert '2 in a row (training stops after 3' in msg

    assert step(2, finite=True)['critic.skipped'] == 0  # resets the run
    assert model.critic_guard.consecutive == 0
    step(3, finite=False)
    step(4, finite=False)
    with pytest.raises(
            NonFiniteLossError,
            match=r'AdversarialDistiller: 3 critic steps in a row.*'
            r'critic\.loss_gp'):
        step(5, finite=False)
    assert model.critic_guard.skipped_total == 5
    assert model.guard.skipped_total == 0 and model.guard.consecutive == 0


def test_nonfinite_critic_step_leaves_critic_its_optimizer_and_student(
        seg_teacher_ckpt, warnings):
    model = skd(seg_teacher_ckpt)
    ow = skd_wrappers(model)
    model.train_step(seg_batch(0), ow)  # momentum exists from here on
    assert ow['critic'].optimizer.state  # the critic's momentum to protect

    # finite critic loss, NaN gradient on one critic weight (the student's
    # backward reaches it too: those gradients are dropped anyway)
    poison = dict(on=False)
    model.critic.last.weight.register_hook(lambda g: g * NAN
                                           if poison['on'] else None)
    seen = {}

    def before_critic_step(module, args):
        seen['critic'] = copied(model.critic)
        seen['critic_optim'] = optim_state(ow['critic'])
        seen['student'] = copied(model.student)
        seen['student_optim'] = optim_state(ow['student'])

    model.critic_loss.register_forward_pre_hook(before_critic_step)
    critic_params = {
        n: p.detach().clone()
        for n, p in model.critic.named_parameters()
    }
    student_before = copied(model.student)
    count = ow['critic']._inner_count

    poison['on'] = True
    log_vars = model.train_step(seg_batch(1), ow)
    assert log_vars['critic.skipped'] == 1
    assert log_vars['critic.nonfinite.skipped'] == 1
    assert 'nonfinite.skipped' not in log_vars
    # the critic (parameters, BN statistics, spectral-norm vectors) and its
    # optimizer: as right before the critic step; its parameters: as before
    # the whole step (only the critic step moves them)
    assert same(seen['critic'], copied(model.critic))
    assert same_optim_state(seen['critic_optim'], optim_state(ow['critic']))
    assert all(
        torch.equal(p, critic_params[n])
        for n, p in model.critic.named_parameters())
    assert ow['critic']._inner_count == count
    assert all(p.grad is None or not p.grad.any()
               for p in model.critic.parameters())
    # the student: its own update happened, the critic step changed nothing
    assert not same(student_before, copied(model.student))
    assert same(seen['student'], copied(model.student))
    assert same_optim_state(seen['student_optim'], optim_state(ow['student']))
    msg, = [w for w in warnings if 'non-finite critic' in w]
    assert 'gradient' in msg and 'grad of critic.last.weight' in msg

    poison['on'] = False
    assert model.train_step(seg_batch(1), ow)['critic.skipped'] == 0
    assert not all(
        torch.equal(p, critic_params[n])
        for n, p in model.critic.named_parameters())
    assert model.critic_guard.consecutive == 0
    assert model.critic_guard.skipped_total == 1


# ------------------------------------------------- the guard and a scaler
class CPUAmpOptimWrapper(AmpOptimWrapper):
    """MMEngine's ``AmpOptimWrapper`` (its ``backward``, ``step`` with the
    scaler's ``step`` and ``update``, ``optim_context``) holding a CPU
    ``GradScaler``; only ``__init__``, which refuses a machine without an
    accelerator, is replaced."""

    def __init__(self, optimizer, scaler):
        OptimWrapper.__init__(self, optimizer=optimizer)
        self._scale_update_param = None
        self.loss_scaler = scaler
        self.cast_dtype = torch.bfloat16  # MMEngine's CPU autocast dtype


class Poison:
    """Forward hook on a module: NaN output (``mode='loss'``) or NaN
    gradient of the output (``mode='grad'``), while ``mode`` is set."""

    def __init__(self, module):
        self.mode = None
        module.register_forward_hook(self, prepend=True)

    def __call__(self, module, args, output):
        if self.mode == 'grad':
            output.register_hook(lambda g: g * NAN)
        elif self.mode == 'loss':
            return output * NAN
        return None


def test_scaler_overflow_is_left_to_the_scaler(teacher_ckpt):
    """Overflowing scaled gradients: the scaler skips the optimizer step
    and backs off, the guard neither counts the step nor stops training, nor
    takes it as a good step; a NaN loss is the guard's (counted, no
    backward, the scale stays as the scaler left it)."""
    model = distiller(teacher_ckpt, max_consecutive_nonfinite=2)
    scaler = torch.amp.GradScaler('cpu', init_scale=2.**16, growth_interval=1)
    ow = CPUAmpOptimWrapper(
        torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), scaler)
    poison = Poison(model.student.backbone.layer3)
    model.train_step(batch(0), ow)  # good: the scale grows (interval 1)
    assert scaler.get_scale() == 2.**17
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    momentum = optim_state(ow)

    poison.mode = 'grad'
    for i in range(5):  # more than max_consecutive_nonfinite
        log_vars = model.train_step(batch(1 + i), ow)
        assert 'nonfinite.skipped' not in log_vars
        assert scaler.get_scale() == 2.**(16 - i)  # update() ran: backoff
    assert model.guard.skipped_total == 0 and model.guard.consecutive == 0
    # the scaler skipped every optimizer step
    assert all(torch.equal(p, params[n]) for n, p in model.named_parameters())
    assert same_optim_state(momentum, optim_state(ow))

    poison.mode = 'loss'  # the guard's: counted, no update() of the scaler
    assert model.train_step(batch(7), ow)['nonfinite.skipped'] == 1
    assert scaler.get_scale() == 2.**12  # the backoff is kept
    assert model.guard.consecutive == 1
    poison.mode = 'grad'  # the scaler's skip: the run of skips goes on
    assert 'nonfinite.skipped' not in model.train_step(batch(8), ow)
    assert model.guard.consecutive == 1 and scaler.get_scale() == 2.**11
    poison.mode = 'loss'
    with pytest.raises(NonFiniteLossError, match='2 training steps in a row'):
        model.train_step(batch(9), ow)

    poison.mode = None  # a good step: trains, grows the scale, resets
    model.train_step(batch(10), ow)
    assert scaler.get_scale() == 2.**12
    assert model.guard.consecutive == 0
    assert not all(
        torch.equal(p, params[n]) for n, p in model.named_parameters())
