# Teacher of the Fashion-MNIST ReviewKD experiment: CIFAR ResNet-56
# (CRD/ReviewKD code, grey input), 3 epochs.
_base_ = ['./fashion-mnist_bs128.py']
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(type='mmkd.CIFARResNet', arch='resnet56', in_channels=1),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=64,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        init_cfg=None))

train_cfg = dict(by_epoch=True, max_epochs=3, val_interval=1)
param_scheduler = dict(
    type='MultiStepLR',
    by_epoch=False,
    milestones=[885, 1061, 1237],  # 3 * 469 * (151, 181, 211) / 240
    gamma=0.1)
