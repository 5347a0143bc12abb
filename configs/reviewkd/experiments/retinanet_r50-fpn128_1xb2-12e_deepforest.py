# Teacher of the DeepForest ReviewKD experiment: RetinaNet R-50, trained
# from scratch (no pretrained weights are available here) on the 45 tree
# tiles of data/deepforest_coco, 400 px, one class. Slimmed for 2 CPU cores:
# FPN and head with 128 channels; anchors halved (octave_base_scale 2: 16 px
# at p3) for the small crowns (17-68 px). Batch 2, SGD lr 0.01 with a short
# linear warm-up and x0.1 after epochs 8 and 11 of 12 (mmdet's 1x
# shape), gradient clipping as mmdet's scratch configs.
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py']

data_root = 'data/deepforest_coco'
metainfo = dict(classes=('tree', ), palette=[(0, 200, 0)])
channels = 128

model = dict(
    backbone=dict(frozen_stages=-1, norm_eval=False, init_cfg=None),
    neck=dict(out_channels=channels),
    bbox_head=dict(
        num_classes=1,
        in_channels=channels,
        feat_channels=channels,
        anchor_generator=dict(octave_base_scale=2)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(400, 400), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(400, 400), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor')),
]
train_dataloader = dict(
    batch_size=2,
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

max_epochs = 12
train_cfg = dict(max_epochs=max_epochs, val_interval=1)
optim_wrapper = dict(
    optimizer=dict(lr=0.01), clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=50),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[8, 11],
        gamma=0.1)
]
auto_scale_lr = dict(enable=False, base_batch_size=2)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(
        interval=1,
        max_keep_ckpts=1,
        save_best='coco/bbox_mAP',
        rule='greater'))
