# Student baseline of the Fashion-MNIST ReviewKD experiment: CIFAR ResNet-20
# (CRD/ReviewKD code, grey input), 1 epoch (what 3 seeds x 3 methods fit in
# about an hour of 2 CPU cores).
_base_ = ['./fashion-mnist_bs128.py']
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(type='mmkd.CIFARResNet', arch='resnet20', in_channels=1),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=64,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        init_cfg=None))

train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
param_scheduler = dict(
    type='MultiStepLR',
    by_epoch=False,
    milestones=[295, 354, 412],  # 469 * (151, 181, 211) / 240
    gamma=0.1)
