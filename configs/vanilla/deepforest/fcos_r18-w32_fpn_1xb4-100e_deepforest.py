# Student baseline of the DeepForest ReviewKD experiment: FCOS on a
# half-width ResNet-18 (base 32 channels), trained from scratch (no
# pretrained weights can be had here) on the 45 training tiles of
# data/deepforest_coco (real aerial RGB, one class: tree crowns of 17-68 px).
# Sized for 2 CPU cores: 192 px random crops at the native resolution, batch
# 4, FPN/head 128 channels over the three levels the crowns fall on (p3-p5,
# strides 8-32, regression ranges 32/64 px), GN in the head (no BN statistics
# from 4 crops), center sampling + GIoU + centerness on the regression branch
# (mmdet's improved FCOS). SGD lr 0.01, linear warm-up over 100 iterations,
# x0.1 after 75 % and 90 % of the epochs. Evaluation on the 11 whole
# validation tiles by mmdet's CocoMetric, with score threshold 0.001 (the
# usual one for AP; mmdet's default 0.05 hides most boxes of a detector
# this young).
_base_ = ['mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py']

data_root = 'data/deepforest_coco'
metainfo = dict(classes=('tree', ), palette=[(0, 200, 0)])
channels = 128
max_epochs = 100

model = dict(
    data_preprocessor=dict(
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    backbone=dict(
        depth=18,
        base_channels=32,
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        style='pytorch',
        init_cfg=None),
    neck=dict(
        in_channels=[32, 64, 128, 256],
        out_channels=channels,
        num_outs=3,
        relu_before_extra_convs=True),
    bbox_head=dict(
        num_classes=1,
        in_channels=channels,
        feat_channels=channels,
        stacked_convs=2,
        strides=[8, 16, 32],
        regress_ranges=((-1, 32), (32, 64), (64, 1e8)),
        norm_on_bbox=True,
        centerness_on_reg=True,
        center_sampling=True,
        conv_bias=True,
        loss_bbox=dict(type='GIoULoss', loss_weight=1.0)),
    test_cfg=dict(score_thr=0.001, nms=dict(type='nms', iou_threshold=0.6)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomCrop', crop_size=(192, 192), allow_negative_crop=False),
    dict(type='RandomFlip', prob=0.5, direction=['horizontal', 'vertical']),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    # the native resolution, as training (sets the scale_factor of 1)
    dict(type='Resize', scale_factor=1.0, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor')),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=1,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='images/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=1),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=1,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='images/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(
    ann_file=data_root + '/annotations/instances_val.json', metric='bbox')
test_evaluator = val_evaluator

train_cfg = dict(max_epochs=max_epochs, val_interval=10)
optim_wrapper = dict(
    optimizer=dict(lr=0.01),
    paramwise_cfg=dict(bias_lr_mult=2., bias_decay_mult=0.),
    clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
        end=100),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[int(max_epochs * 0.75), int(max_epochs * 0.9)],
        gamma=0.1)
]
auto_scale_lr = dict(enable=False, base_batch_size=4)
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(
        interval=10,
        max_keep_ckpts=1,
        save_best='coco/bbox_mAP',
        rule='greater'))
