# CIFAR ShuffleNetV2 (1x, CRD/ReviewKD code) on CIFAR-100, the authors'
# schedule with lr 0.02 (their train.py for 'shuffle' students).
_base_ = ['../_base_/cifar100_bs128_240e.py', '../_base_/cifar_classifier.py']

model = dict(
    backbone=dict(type='mmkd.CIFARShuffleNetV2', out_indices=(3, )),
    head=dict(in_channels=1024))

optim_wrapper = dict(optimizer=dict(lr=0.02))
