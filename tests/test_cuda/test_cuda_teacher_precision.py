"""A frozen teacher in float16 and channels-last on CUDA
(``teacher=dict(..., precision='fp16', channels_last=True)``): its weights
are cast once, its features reach the losses as float32 and agree with the
float32 teacher's to float16's precision, and a float16 step trains."""
import copy

import pytest
import torch
from mmengine.optim import build_optim_wrapper

from mmkd.utils import enable_amp

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        not torch.cuda.is_available(), reason='needs a CUDA device')
]


def loss_inputs(model):
    """Every tensor each loss module receives, by loss name."""
    seen = {}

    def flat(x):
        if torch.is_tensor(x):
            return [x]
        if isinstance(x, (list, tuple)):
            return [t for v in x for t in flat(v)]
        if isinstance(x, dict):
            return [t for v in x.values() for t in flat(v)]
        return []

    for name, loss in model.graph.losses.items():
        loss.register_forward_pre_hook(
            lambda m, args, kwargs, name=name: seen.setdefault(
                name, {}).update({
                    k: v.detach() for k, v in enumerate(flat(args))
                } | {k: flat(v) for k, v in kwargs.items()}),
            with_kwargs=True)
    return seen


@pytest.mark.parametrize('kind', ['kd', 'reviewkd'])
def test_fp16_channels_last_teacher(kind, make_distiller, make_batch):
    _, ref = make_distiller(kind)
    cfg, model = make_distiller(kind, precision='fp16', channels_last=True)
    model.student.load_state_dict(ref.student.state_dict())
    model.connectors.load_state_dict(ref.connectors.state_dict())
    ref, model = ref.cuda().eval(), model.cuda().eval()
    conv = model.teacher.backbone.conv1
    assert conv.weight.dtype == torch.float16 and conv.weight.is_cuda
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    data = make_batch(model)
    values = {}
    for name, m in (('fp32', ref), ('fp16', model)):
        seen = loss_inputs(m)
        with torch.no_grad():
            batch = m.data_preprocessor(copy.deepcopy(data), False)
            taps, _ = m._record(batch['inputs'], batch['data_samples'],
                                'tensor')
            m.compute_distill_losses(taps, batch['data_samples'])
        values[name] = seen
    assert values['fp16'].keys() == values['fp32'].keys() != set()
    for loss, args in values['fp16'].items():
        for arg, tensors in args.items():
            tensors = tensors if isinstance(tensors, list) else [tensors]
            refs = values['fp32'][loss][arg]
            refs = refs if isinstance(refs, list) else [refs]
            for t, r in zip(tensors, refs):
                if not t.is_floating_point():
                    continue
                # float32 at the losses, float16's precision
                assert t.dtype == torch.float32, (loss, arg, t.dtype)
                tol = 2e-2 * float(r.abs().max()) + 1e-4
                torch.testing.assert_close(t, r, rtol=2e-2, atol=tol)

    # a float16 AMP step with this teacher trains the student
    model.train()
    amp_cfg = copy.deepcopy(cfg)
    enable_amp(amp_cfg, cuda=True)
    ow = build_optim_wrapper(model, amp_cfg.optim_wrapper)
    fc = model.student.head.fc.weight
    for _ in range(10):
        before = fc.detach().clone()
        log_vars = model.train_step(make_batch(model, seed=1), ow)
        assert 'nonfinite.skipped' not in log_vars
        if not torch.equal(before, fc.detach()):
            break
    else:
        pytest.fail('10 float16 steps did not change the student')
    assert conv.weight.dtype == torch.float16  # the teacher stays fp16
