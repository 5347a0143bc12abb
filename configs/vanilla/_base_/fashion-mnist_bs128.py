# Fashion-MNIST (60,000 / 10,000 grey 28x28 images) for the small ReviewKD
# experiment: the authors' CIFAR recipe scaled to a few epochs on 2 CPU
# cores. Augmentation as theirs (random crop with 4 px padding + horizontal
# flip), mean/std of the training images, batch 128, SGD lr 0.1 nesterov,
# wd 5e-4; the LR steps of their 240-epoch schedule (x0.1 after 151/240,
# 181/240 and 211/240 of training) are applied per iteration (milestones set
# by the children).
_base_ = ['mmpretrain::_base_/default_runtime.py']

data_root = 'data/fashion_mnist'
data_preprocessor = dict(
    num_classes=10, mean=[72.94], std=[90.02], to_rgb=False)
train_pipeline = [
    dict(type='RandomCrop', crop_size=28, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=128,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='FashionMNIST',
        data_root=data_root,
        split='train',
        download=False,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=256,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='FashionMNIST',
        data_root=data_root,
        split='test',
        test_mode=True,  # mmpretrain 1.2.0 picks the test files by test_mode
        download=False,
        pipeline=test_pipeline))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

optim_wrapper = dict(
    optimizer=dict(
        type='SGD', lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4))
iters_per_epoch = 469  # ceil(60000 / 128)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(
        type='CheckpointHook', interval=1, max_keep_ckpts=1, save_best='auto'))
