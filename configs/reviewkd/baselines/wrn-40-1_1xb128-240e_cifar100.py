# WRN-40-1 (pre-activation, ReviewKD code) on CIFAR-100, the authors' schedule.
_base_ = ['../_base_/cifar100_bs128_240e.py']
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(type='mmkd.WideResNet', depth=40, widen_factor=1),
    neck=dict(type='GlobalAveragePooling'),
    # init_cfg=None keeps PyTorch's default Linear init, as the authors' FC.
    head=dict(
        type='LinearClsHead',
        num_classes=100,
        in_channels=64,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        init_cfg=None))
