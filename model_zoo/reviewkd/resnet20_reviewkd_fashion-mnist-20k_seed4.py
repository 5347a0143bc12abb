custom_hooks = []
custom_imports = dict(
    allow_failed_imports=False, imports=[
        'mmkd',
    ])
data_preprocessor = dict(
    mean=[
        72.94,
    ], num_classes=10, std=[
        90.02,
    ], to_rgb=False)
data_root = 'data/fashion_mnist'
default_hooks = dict(
    checkpoint=dict(
        _scope_='mmpretrain',
        interval=1,
        max_keep_ckpts=1,
        save_best='auto',
        type='CheckpointHook'),
    logger=dict(_scope_='mmpretrain', interval=50, type='LoggerHook'),
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
iters_per_epoch = 469
log_level = 'INFO'
lr = 0.1
model = dict(
    backbone=dict(arch='resnet20', in_channels=1, type='mmkd.CIFARResNet'),
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
        lr=0.1, momentum=0.9, nesterov=True, type='SGD', weight_decay=0.0005))
param_scheduler = dict(
    by_epoch=False, gamma=0.1, milestones=[
        99,
        118,
        138,
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
    persistent_workers=True,
    sampler=dict(shuffle=False, type='DefaultSampler'))
test_evaluator = dict(topk=(1, ), type='Accuracy')
test_pipeline = [
    dict(type='PackInputs'),
]
train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
train_dataloader = dict(
    batch_size=128,
    dataset=dict(
        data_root='data/fashion_mnist',
        download=False,
        indices=20000,
        pipeline=[
            dict(crop_size=28, padding=4, type='RandomCrop'),
            dict(direction='horizontal', prob=0.5, type='RandomFlip'),
            dict(type='PackInputs'),
        ],
        split='train',
        type='FashionMNIST'),
    num_workers=1,
    persistent_workers=True,
    sampler=dict(shuffle=True, type='DefaultSampler'))
train_pipeline = [
    dict(crop_size=28, padding=4, type='RandomCrop'),
    dict(direction='horizontal', prob=0.5, type='RandomFlip'),
    dict(type='PackInputs'),
]
val_cfg = dict()
val_dataloader = dict(
    batch_size=256,
    dataset=dict(
        data_root='data/fashion_mnist',
        download=False,
        indices=range(50000, 55000),
        pipeline=[
            dict(type='PackInputs'),
        ],
        split='train',
        test_mode=False,
        type='FashionMNIST'),
    num_workers=1,
    persistent_workers=True,
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
