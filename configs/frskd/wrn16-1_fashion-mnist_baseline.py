# CE-only twin of wrn16-1_fashion-mnist.py, the setting of mmkd's own FRSKD
# runs (tools/experiments/frskd_fashion_mnist.sh): the authors' WRN family
# (WideResNet(style='frskd'), their init) at width 1 on the complete
# Fashion-MNIST (60,000 / 10,000 grey 28x28 images, whose stages 28/14/7 halve
# exactly as BiFPNc needs), chosen to fit two CPU cores. The authors'
# optimiser (SGD lr 0.1, momentum 0.9, wd 1e-4, batch 128) and their step
# schedule shrunk from 200 to 4 epochs (x0.1 at 50 % and 75 %).
# Data: tools/dataset_converters/prepare_fashion_mnist.py data/fashion_mnist
_base_ = [
    'mmpretrain::_base_/schedules/cifar10_bs128.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='mmkd.WideResNet',
        depth=16,
        widen_factor=1,
        in_channels=1,
        style='frskd',
        out_indices=(2, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=64,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        # the authors' FC init: nn.Linear's default weights, zero bias
        init_cfg=dict(
            type='Uniform', layer='Linear', a=-64**-0.5, b=64**-0.5,
            bias=0.)))

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

param_scheduler = dict(
    type='MultiStepLR', by_epoch=True, milestones=[2, 3], gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=4, val_interval=1)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1))
