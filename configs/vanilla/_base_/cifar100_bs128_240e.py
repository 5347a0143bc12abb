# CIFAR-100 setting of the ReviewKD (and CRD) code, on mmpretrain's CIFAR100:
# RandomCrop(32, pad 4) + horizontal flip, the authors' normalisation, batch
# 128 on one device, SGD (nesterov) lr 0.1, wd 5e-4, 240 epochs.
_base_ = [
    'mmpretrain::_base_/datasets/cifar100_bs16.py',
    'mmpretrain::_base_/default_runtime.py'
]

# mean/std (125.3, 123.0, 113.9) / (63.0, 62.1, 66.7) on the 0-255 scale
data_preprocessor = dict(
    num_classes=100,
    mean=[125.3, 123.0, 113.9],
    std=[63.0, 62.1, 66.7],
    to_rgb=False)

train_dataloader = dict(batch_size=128, num_workers=2)
val_dataloader = dict(batch_size=128, num_workers=1)
test_dataloader = dict(batch_size=128, num_workers=1)

optim_wrapper = dict(
    optimizer=dict(
        type='SGD', lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4))
# The authors divide the LR by 10 at the *end* of the 0-based epochs 150, 180
# and 210, so the new LR applies from epochs 151, 181, 211; MMEngine's
# by-epoch milestones take effect at the start of the given epoch.
param_scheduler = dict(
    type='MultiStepLR', by_epoch=True, milestones=[151, 181, 211], gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=240, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=128)

# The authors report the best test accuracy seen during training.
default_hooks = dict(
    checkpoint=dict(
        type='CheckpointHook', interval=10, max_keep_ckpts=1,
        save_best='auto'))
