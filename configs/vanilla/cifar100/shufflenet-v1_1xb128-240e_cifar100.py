# CIFAR ShuffleNetV1 (g=3, CRD/ReviewKD code) on CIFAR-100, the authors'
# schedule with lr 0.02 (their train.py for 'shuffle' students).
_base_ = ['../_base_/cifar100_bs128_240e.py', '../_base_/cifar_classifier.py']

model = dict(
    backbone=dict(type='mmkd.CIFARShuffleNetV1'), head=dict(in_channels=960))

optim_wrapper = dict(optimizer=dict(lr=0.02))
