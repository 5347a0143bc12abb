# CE-only twin of ../../frskd/resnet18_cifar100_mixup.py: mmpretrain's batch
# Mixup (Beta(0.2, 0.2), the authors' --aug_a 0.2) on the CIFAR-100 baseline.
_base_ = ['./resnet18_cifar100_baseline.py']

model = dict(
    head=dict(loss=dict(type='CrossEntropyLoss', use_soft=True)),
    train_cfg=dict(augments=dict(type='Mixup', alpha=0.2)))
