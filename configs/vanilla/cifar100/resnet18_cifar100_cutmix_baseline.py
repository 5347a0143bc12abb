# CE-only twin of ../../frskd/resnet18_cifar100_cutmix.py: mmpretrain's batch
# CutMix (Beta(1, 1), the authors' --aug_a 1.0; lambda corrected to the pasted
# area, as the authors' code).
_base_ = ['./resnet18_cifar100_baseline.py']

model = dict(
    head=dict(loss=dict(type='CrossEntropyLoss', use_soft=True)),
    train_cfg=dict(augments=dict(type='CutMix', alpha=1.0)))
