# Student baseline of the Fashion-MNIST ReviewKD experiment: CIFAR ResNet-20
# (CRD/ReviewKD code, grey input), 1 epoch (what 3 seeds x 3 methods fit in
# about an hour of 2 CPU cores).
_base_ = ['../_base_/fashion-mnist_bs128.py', '../_base_/cifar_classifier.py']

model = dict(
    backbone=dict(type='mmkd.CIFARResNet', arch='resnet20', in_channels=1),
    head=dict(num_classes=10, in_channels=64))

train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
param_scheduler = dict(
    type='MultiStepLR',
    by_epoch=False,
    milestones=[295, 354, 412],  # 469 * (151, 181, 211) / 240
    gamma=0.1)
