# CE-only twin of configs/frskd/resnet14_fashion-mnist.py, the setting of
# mmkd's own FRSKD runs (tools/experiments/frskd_fashion_mnist.sh) on the
# complete Fashion-MNIST (60,000 / 10,000 grey 28x28 images).
# Student: mmpretrain's ResNet_CIFAR cut to three stages of two BasicBlocks,
# widths 16/32/64 ("ResNet-14"): the authors' cifarresnet18 design (3x3
# stem, no max-pool, PyTorch-default init) made small enough for two CPU
# cores; its stages (28, 14, 7) halve exactly as BiFPNc needs, and it is a
# plain mmpretrain model, so the converted student loads without mmkd.
# The authors' optimiser (SGD lr 0.1, momentum 0.9, wd 1e-4, batch 128) and
# step schedule shrunk from 200 to 2 epochs (x0.1 at 50 % and 75 %).
# Data: python tools/dataset_converters/prepare_fashion_mnist.py
_base_ = [
    'mmpretrain::_base_/schedules/cifar10_bs128.py',
    'mmpretrain::_base_/default_runtime.py',
]

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='ResNet_CIFAR',
        depth=18,  # BasicBlock, two per stage
        num_stages=3,
        stem_channels=16,
        base_channels=16,
        strides=(1, 2, 2),
        dilations=(1, 1, 1),
        out_indices=(2, ),
        in_channels=1,
        init_cfg=None,
        zero_init_residual=False),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=64,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        init_cfg=None))

# Dataset (docs/en/datasets.md). mmpretrain's FashionMNIST picks the test
# files only with test_mode=True.
dataset_type = 'FashionMNIST'
data_root = 'data/fashion_mnist'
data_preprocessor = dict(
    num_classes=10, mean=[72.94], std=[90.02], to_rgb=False)
train_pipeline = [
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=128,
    num_workers=1,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        download=False,
        pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=256,
    num_workers=1,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='test',
        test_mode=True,
        download=False,
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

# 2 epochs of 469 iterations (batch 128); lr x0.1 at 50 % and 75 % of the
# schedule, as the authors' [100, 150] of 200 epochs.
param_scheduler = dict(
    type='MultiStepLR', by_epoch=False, milestones=[469, 704], gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=1)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1))
