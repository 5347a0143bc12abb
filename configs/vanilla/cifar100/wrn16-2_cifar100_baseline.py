# CE-only twin of ../../frskd/wrn16-2_cifar100.py: the authors' WRN-16-2
# (`wrn16x2`, mmkd's WideResNet(style='frskd'): no block-input BN, one BN per
# stage output) on CIFAR-100 with their init (Kaiming-normal fan-out convs, BN
# 1/0 -- the backbone default -- and an FC with PyTorch's default weights and a
# zero bias). Data and schedule as resnet18_cifar100_baseline.py.
_base_ = ['./resnet18_cifar100_baseline.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmkd.WideResNet',
        depth=16,
        widen_factor=2,
        style='frskd',
        out_indices=(2, )),
    head=dict(
        in_channels=128,
        # nn.Linear's default weight init is U(-1/sqrt(128), 1/sqrt(128))
        init_cfg=dict(
            _delete_=True,
            type='Uniform',
            layer='Linear',
            a=-128**-0.5,
            b=128**-0.5,
            bias=0.)))
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
