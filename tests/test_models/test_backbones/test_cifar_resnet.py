import pytest
import torch
import torch.nn.functional as F

from mmkd.models.backbones import CIFARResNet
from mmkd.registry import MODELS


def _count(depth, stem, base, num_classes=100):
    """Parameters of the CRD/ReviewKD CIFAR ResNet with a 100-class FC,
    counted by hand: 3x3 convs without bias, BN (weight + bias), 1x1
    conv + BN shortcut where the shape changes."""
    n = (depth - 2) // 6
    total = 3 * 9 * stem + 2 * stem
    cin = stem
    for i in range(3):
        c = base * 2**i
        for j in range(n):
            total += cin * 9 * c + 2 * c + c * 9 * c + 2 * c
            if cin != c or (i > 0 and j == 0):
                total += cin * c + 2 * c
            cin = c
    return total + cin * num_classes + num_classes


# arch: (depth, stem, base, published params in M with a 100-class FC)
ARCHS = {
    'resnet20': (20, 16, 16, 0.28),
    'resnet56': (56, 16, 16, 0.86),
    'resnet110': (110, 16, 16, 1.73),
    'resnet8x4': (8, 32, 64, 1.23),
    'resnet32x4': (32, 32, 64, 7.43),
}


@pytest.mark.parametrize('arch', list(ARCHS))
def test_param_counts(arch):
    depth, stem, base, published = ARCHS[arch]
    model = CIFARResNet(arch)
    c_last = model.stage_channels[-1]
    n = sum(p.numel() for p in model.parameters()) + c_last * 100 + 100
    assert n == _count(depth, stem, base)
    assert abs(n / 1e6 - published) < 0.01


@pytest.mark.parametrize('arch,chans', [('resnet20', (16, 32, 64)),
                                        ('resnet8x4', (64, 128, 256))])
def test_stage_shapes(arch, chans):
    model = CIFARResNet(arch, out_indices=(0, 1, 2))
    outs = model(torch.randn(2, 3, 32, 32))
    assert len(outs) == 3
    for o, c, s in zip(outs, chans, (32, 16, 8)):
        assert o.shape == (2, c, s, s)
        assert o.min() >= 0  # post-ReLU
    assert model.conv1.out_channels == (16 if arch == 'resnet20' else 32)


def test_out_indices_and_grayscale():
    model = CIFARResNet('resnet8', in_channels=1, out_indices=(-1, ))
    outs = model(torch.randn(2, 1, 16, 16))
    assert len(outs) == 1 and outs[0].shape == (2, 64, 4, 4)


@pytest.mark.parametrize('arch,last', [('resnet20', 2), ('resnet8x4', 0)])
def test_preact_tap_is_residual_sum_before_last_relu(arch, last):
    torch.manual_seed(0)
    model = CIFARResNet(arch, out_indices=(0, 1, 2))
    model.init_weights()
    modules = dict(model.named_modules())
    rec = {}

    def save(name, use_input):
        def hook(mod, inp, out):
            rec[name] = (inp[0] if use_input else out).detach().clone()
        return hook

    for k in (1, 2, 3):
        block = f'layer{k}.{last}'
        modules[f'{block}.preact'].register_forward_hook(
            save(f'preact{k}', False))
        modules[f'{block}.relu2'].register_forward_hook(
            save(f'relu_in{k}', True))
        modules[block].register_forward_hook(
            lambda m, i, o, k=k: rec.__setitem__(f'in{k}', i[0].detach()))
    outs = model(torch.randn(2, 3, 16, 16))

    for k, out in zip((1, 2, 3), outs):
        pre = rec[f'preact{k}']
        assert torch.equal(pre, rec[f'relu_in{k}'])
        assert pre.min() < 0  # truly before the ReLU
        assert torch.allclose(F.relu(pre), out)
        # recompute the residual sum from the block's layers
        blk = modules[f'layer{k}.{last}']
        x = rec[f'in{k}']
        with torch.no_grad():
            y = blk.bn2(blk.conv2(F.relu(blk.bn1(blk.conv1(x)))))
            sc = x if blk.downsample is None else blk.downsample(x)
        assert torch.allclose(pre, y + sc, atol=1e-5)


def test_official_key_names():
    keys = set(CIFARResNet('resnet8x4').state_dict())
    for k in ('conv1.weight', 'bn1.running_mean', 'layer1.0.conv1.weight',
              'layer1.0.bn2.bias', 'layer1.0.downsample.0.weight',
              'layer2.0.downsample.1.weight', 'layer3.0.conv2.weight'):
        assert k in keys
    # resnet20's first stage keeps the width: no shortcut conv
    keys = set(CIFARResNet('resnet20').state_dict())
    assert 'layer1.0.downsample.0.weight' not in keys
    assert 'layer2.0.downsample.0.weight' in keys


def test_frozen_stages_and_norm_eval():
    model = CIFARResNet('resnet8', frozen_stages=1, norm_eval=True)
    model.train()
    assert not any(p.requires_grad for p in model.conv1.parameters())
    assert not any(p.requires_grad for p in model.layer1.parameters())
    assert all(p.requires_grad for p in model.layer2.parameters())
    assert not model.layer2[0].bn1.training


def test_arch_dict_and_errors():
    model = CIFARResNet(dict(depth=14, stem_channels=8, base_channels=4),
                        out_indices=(0, 1, 2))
    assert model.num_blocks == 2 and model.stage_channels == [4, 8, 16]
    with pytest.raises(ValueError, match='unknown arch'):
        CIFARResNet('resnet18')
    with pytest.raises(ValueError, match='6n\\+2'):
        CIFARResNet(dict(depth=18, stem_channels=8, base_channels=4))
    with pytest.raises(ValueError, match='misses'):
        CIFARResNet(dict(depth=20))
    with pytest.raises(ValueError, match='out_indices'):
        CIFARResNet('resnet8', out_indices=(3, ))


def test_registry_build():
    model = MODELS.build(dict(type='CIFARResNet', arch='resnet32'))
    assert isinstance(model, CIFARResNet) and model.num_blocks == 5
