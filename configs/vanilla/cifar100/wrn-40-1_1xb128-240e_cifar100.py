# WRN-40-1 (pre-activation, ReviewKD code) on CIFAR-100, the authors' schedule.
_base_ = ['../_base_/cifar100_bs128_240e.py', '../_base_/cifar_classifier.py']

model = dict(
    backbone=dict(type='mmkd.WideResNet', depth=40, widen_factor=1),
    head=dict(in_channels=64))
