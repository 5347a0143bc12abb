# CIFAR ResNet-32x4 (CRD/ReviewKD code) on CIFAR-100, the authors' schedule.
# Teacher of resnet8x4 and of the ShuffleNets.
_base_ = ['../_base_/cifar100_bs128_240e.py', '../_base_/cifar_classifier.py']

model = dict(
    backbone=dict(type='mmkd.CIFARResNet', arch='resnet32x4'),
    head=dict(in_channels=256))
