# CIFAR ResNet-110 (CRD/ReviewKD code) on CIFAR-100, the authors' schedule.
# Teacher of resnet32.
_base_ = ['../_base_/cifar100_bs128_240e.py', '../_base_/cifar_classifier.py']

model = dict(
    backbone=dict(type='mmkd.CIFARResNet', arch='resnet110'),
    head=dict(in_channels=64))
