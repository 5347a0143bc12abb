"""AutocastOptimWrapper: bfloat16 autocast steps without a loss scaler."""
import copy

import pytest
import torch
from torch import nn

from mmkd.engine import AutocastOptimWrapper
from mmkd.registry import OPTIM_WRAPPERS


def small_net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))


def test_forward_in_bf16_params_and_grads_fp32_and_close_to_fp32():
    net = small_net()
    ref = copy.deepcopy(net)
    x = torch.randn(32, 3, 16, 16)
    y = torch.arange(32) % 4
    ow = AutocastOptimWrapper(
        optimizer=torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9))
    with ow.optim_context(net):
        out = net(x)
    assert out.dtype == torch.bfloat16  # the linear ran under autocast
    torch.testing.assert_close(out.float(), ref(x), rtol=0, atol=5e-2)
    loss = nn.functional.cross_entropy(out.float(), y)
    ow.backward(loss)
    ref_loss = nn.functional.cross_entropy(ref(x), y)
    ref_loss.backward()
    for (name, p), q in zip(net.named_parameters(), ref.parameters()):
        assert p.dtype == torch.float32 and p.grad.dtype == torch.float32
        # bfloat16 has an 8-bit mantissa: the gradients point the same way
        # and differ by a few percent
        cos = nn.functional.cosine_similarity(
            p.grad.flatten(), q.grad.flatten(), dim=0)
        rel = (p.grad - q.grad).norm() / q.grad.norm()
        assert cos > 0.99 and rel < 0.1, (name, cos, rel)
    before = [p.detach().clone() for p in net.parameters()]
    ow.step()
    assert all(not torch.equal(b, p) for b, p in zip(before, net.parameters()))
    assert all(p.dtype == torch.float32 for p in net.parameters())
    with torch.no_grad():  # outside the context: float32 again
        assert net(x).dtype == torch.float32


def test_state_dict_has_no_loss_scaler_and_round_trips():
    net = small_net()
    ow = AutocastOptimWrapper(
        optimizer=torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9))
    with ow.optim_context(net):
        loss = net(torch.randn(2, 3, 8, 8)).float().sum()
    ow.update_params(loss)
    state = ow.state_dict()
    assert 'loss_scaler' not in state
    assert state['state']  # momentum buffers
    other = AutocastOptimWrapper(
        optimizer=torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9))
    other.load_state_dict(copy.deepcopy(state))
    for k, v in other.state_dict()['state'].items():
        torch.testing.assert_close(v['momentum_buffer'],
                                   state['state'][k]['momentum_buffer'])


def test_built_from_the_registry_and_fp16_refused():
    net = small_net()
    ow = OPTIM_WRAPPERS.build(
        dict(type='mmkd.AutocastOptimWrapper',
             optimizer=torch.optim.SGD(net.parameters(), lr=0.1)))
    assert isinstance(ow, AutocastOptimWrapper)
    with pytest.raises(ValueError, match='needs one.*AmpOptimWrapper'):
        AutocastOptimWrapper(
            dtype='float16',
            optimizer=torch.optim.SGD(net.parameters(), lr=0.1))
    with pytest.raises(ValueError, match='not one of'):
        AutocastOptimWrapper(
            dtype='int8', optimizer=torch.optim.SGD(net.parameters(), lr=0.1))
