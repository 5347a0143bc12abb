# CIFAR ResNet-8x4 (CRD/ReviewKD code) on CIFAR-100, the authors' schedule.
_base_ = ['../_base_/cifar100_bs128_240e.py', '../_base_/cifar_classifier.py']

model = dict(
    backbone=dict(type='mmkd.CIFARResNet', arch='resnet8x4'),
    head=dict(in_channels=256))
