auto_scale_lr = dict(base_batch_size=128)
data_preprocessor = dict(
    mean=[
        72.94,
    ], num_classes=10, std=[
        90.02,
    ], to_rgb=False)
data_root = 'data/fashion_mnist'
dataset_type = 'FashionMNIST'
default_hooks = dict(
    checkpoint=dict(
        _scope_='mmpretrain',
        interval=5,
        max_keep_ckpts=1,
        type='CheckpointHook'),
    logger=dict(_scope_='mmpretrain', interval=16, type='LoggerHook'),
    param_scheduler=dict(_scope_='mmpretrain', type='ParamSchedulerHook'),
    sampler_seed=dict(_scope_='mmpretrain', type='DistSamplerSeedHook'),
    timer=dict(_scope_='mmpretrain', type='IterTimerHook'),
    visualization=dict(
        _scope_='mmpretrain', enable=False, type='VisualizationHook'))
default_scope = 'mmpretrain'
env_cfg = dict(
    cudnn_benchmark=False,
    dist_cfg=dict(backend='nccl'),
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0))
epochs = 40
frskd_stages = [
    's_layer1',
    's_layer2',
    's_layer3',
]
log_level = 'INFO'
lr = 0.03
model = dict(
    backbone=dict(
        base_channels=16,
        depth=18,
        dilations=(
            1,
            1,
            1,
        ),
        in_channels=1,
        init_cfg=None,
        num_stages=3,
        out_indices=(2, ),
        stem_channels=16,
        strides=(
            1,
            2,
            2,
        ),
        type='ResNet_CIFAR',
        zero_init_residual=False),
    head=dict(
        in_channels=64,
        init_cfg=None,
        loss=dict(loss_weight=1.0, type='CrossEntropyLoss'),
        num_classes=10,
        type='LinearClsHead'),
    neck=dict(type='GlobalAveragePooling'),
    type='ImageClassifier')
optim_wrapper = dict(
    optimizer=dict(
        _scope_='mmpretrain',
        lr=0.03,
        momentum=0.9,
        type='SGD',
        weight_decay=0.0001))
param_scheduler = dict(
    by_epoch=True, gamma=0.1, milestones=[
        20,
        30,
    ], type='MultiStepLR')
randomness = dict(deterministic=False, seed=None)
test_cfg = dict()
test_dataloader = dict(
    batch_size=256,
    dataset=dict(
        data_root='data/fashion_mnist',
        download=False,
        pipeline=[
            dict(type='PackInputs'),
        ],
        split='test',
        test_mode=True,
        type='FashionMNIST'),
    num_workers=1,
    sampler=dict(shuffle=False, type='DefaultSampler'))
test_evaluator = dict(topk=(1, ), type='Accuracy')
test_pipeline = [
    dict(type='PackInputs'),
]
train_cfg = dict(by_epoch=True, max_epochs=40, val_interval=5)
train_dataloader = dict(
    batch_size=64,
    dataset=dict(
        data_root='data/fashion_mnist',
        download=False,
        indices=1000,
        pipeline=[
            dict(direction='horizontal', prob=0.5, type='RandomFlip'),
            dict(type='PackInputs'),
        ],
        split='train',
        type='FashionMNIST'),
    num_workers=1,
    sampler=dict(shuffle=True, type='DefaultSampler'))
train_pipeline = [
    dict(direction='horizontal', prob=0.5, type='RandomFlip'),
    dict(type='PackInputs'),
]
val_cfg = dict()
val_dataloader = dict(
    batch_size=256,
    dataset=dict(
        data_root='data/fashion_mnist',
        download=False,
        indices=range(50000, 52000),
        pipeline=[
            dict(type='PackInputs'),
        ],
        split='train',
        test_mode=False,
        type='FashionMNIST'),
    num_workers=1,
    sampler=dict(shuffle=False, type='DefaultSampler'))
val_evaluator = dict(topk=(1, ), type='Accuracy')
vis_backends = [
    dict(_scope_='mmpretrain', type='LocalVisBackend'),
]
visualizer = dict(
    _scope_='mmpretrain',
    type='UniversalVisualizer',
    vis_backends=[
        dict(type='LocalVisBackend'),
    ])
