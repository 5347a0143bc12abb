# CIFAR ResNet-56 (CRD/ReviewKD code) on CIFAR-100, the authors' schedule.
# Teacher of resnet20.
_base_ = ['../_base_/cifar100_bs128_240e.py', '../_base_/cifar_classifier.py']

model = dict(
    backbone=dict(type='mmkd.CIFARResNet', arch='resnet56'),
    head=dict(in_channels=64))
