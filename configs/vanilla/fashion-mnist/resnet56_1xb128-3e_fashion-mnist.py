# Teacher of the Fashion-MNIST ReviewKD experiment: CIFAR ResNet-56
# (CRD/ReviewKD code, grey input), 3 epochs.
_base_ = ['../_base_/fashion-mnist_bs128.py', '../_base_/cifar_classifier.py']

model = dict(
    backbone=dict(type='mmkd.CIFARResNet', arch='resnet56', in_channels=1),
    head=dict(num_classes=10, in_channels=64))

train_cfg = dict(by_epoch=True, max_epochs=3, val_interval=1)
param_scheduler = dict(
    type='MultiStepLR',
    by_epoch=False,
    milestones=[885, 1061, 1237],  # 3 * 469 * (151, 181, 211) / 240
    gamma=0.1)
