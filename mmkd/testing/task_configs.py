"""Tiny "existing user configs" of the three task libraries, written as files.

Each is an ordinary mmpretrain/mmdet/mmseg config over tiny data written in
the real on-disk format; the distillation configs of the tests inherit them
unchanged, as a user would.
"""
import os.path as osp
import textwrap


def write(path, *texts: str) -> str:
    """Write the config made of ``texts``, each dedented, to ``path``."""
    with open(path, 'w') as f:
        f.write(''.join(textwrap.dedent(text) for text in texts))
    return str(path)


def cls_data(data: dict) -> str:
    """The data part of :func:`cls_config`: 32 px pipelines, the loaders of
    a CUB-layout dataset and an accuracy evaluator. Also for a config that
    inherits another one and only swaps in the tiny data."""
    return textwrap.dedent(f"""
        pipeline = [
            dict(type='LoadImageFromFile'),
            dict(type='Resize', scale=32),
            dict(type='PackInputs'),
        ]
        dataset = dict(type='CUB', data_root={data['data_root']!r},
                       metainfo=dict(classes={data['classes']!r}),
                       pipeline=pipeline)
        train_dataloader = dict(
            batch_size=2, num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=True),
            dataset=dict(dataset, split='train'))
        val_dataloader = dict(
            batch_size=2, num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=False),
            dataset=dict(dataset, split='test'))
        test_dataloader = val_dataloader
        val_evaluator = dict(type='Accuracy', topk=(1, ))
        test_evaluator = val_evaluator
        """)


def cls_config(path, data: dict, depth: int = 18) -> str:
    """mmpretrain ResNet on a CUB-layout dataset, 32 px, 1 epoch."""
    return write(path, f"""
        _base_ = ['mmpretrain::_base_/default_runtime.py']
        default_scope = 'mmpretrain'
        model = dict(
            type='ImageClassifier',
            backbone=dict(type='ResNet', depth={depth}, num_stages=4,
                          out_indices=(3, ), style='pytorch'),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes={len(data['classes'])},
                      in_channels=512,
                      loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))
        data_preprocessor = dict(
            num_classes={len(data['classes'])}, mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375], to_rgb=True)
        """, cls_data(data), """
        optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9))
        train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
        val_cfg = dict()
        test_cfg = dict()
        default_hooks = dict(logger=dict(type='LoggerHook', interval=1),
                             checkpoint=dict(type='CheckpointHook',
                                             interval=1))
        """)


def det_data(data: dict) -> str:
    """The data part of :func:`det_config`: 64 px pipelines, the loaders of
    a COCO-json dataset and its ``CocoMetric``. Also for a config that
    inherits another one and only swaps in the tiny data."""
    return textwrap.dedent(f"""
        metainfo = dict(classes={data['classes']!r})
        train_pipeline = [
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', with_bbox=True),
            dict(type='Resize', scale=(64, 64), keep_ratio=True),
            dict(type='PackDetInputs'),
        ]
        test_pipeline = [
            dict(type='LoadImageFromFile'),
            dict(type='Resize', scale=(64, 64), keep_ratio=True),
            dict(type='LoadAnnotations', with_bbox=True),
            dict(type='PackDetInputs',
                 meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                            'scale_factor')),
        ]
        train_dataloader = dict(
            batch_size=2, num_workers=0, persistent_workers=False,
            dataset=dict(data_root={data['data_root']!r}, metainfo=metainfo,
                         ann_file={data['train_ann_file']!r},
                         data_prefix=dict(img={data['train_img_prefix']!r}),
                         pipeline=train_pipeline))
        val_dataloader = dict(
            batch_size=1, num_workers=0, persistent_workers=False,
            dataset=dict(data_root={data['data_root']!r}, metainfo=metainfo,
                         ann_file={data['val_ann_file']!r},
                         data_prefix=dict(img={data['val_img_prefix']!r}),
                         pipeline=test_pipeline))
        test_dataloader = val_dataloader
        val_evaluator = dict(
            ann_file={osp.join(data['data_root'], data['val_ann_file'])!r})
        test_evaluator = val_evaluator
        """)


def det_config(path, data: dict, depth: int = 18) -> str:
    """mmdet Faster R-CNN R-{depth}-FPN on a COCO-json dataset, 64 px."""
    in_channels = [64, 128, 256, 512] if depth < 50 else [256, 512, 1024,
                                                          2048]
    return write(path, f"""
        _base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py']
        model = dict(
            backbone=dict(depth={depth}, init_cfg=None),
            neck=dict(in_channels={in_channels}),
            roi_head=dict(bbox_head=dict(num_classes={len(data['classes'])})))
        """, det_data(data), """
        train_cfg = dict(max_epochs=1, val_interval=1)
        default_hooks = dict(logger=dict(type='LoggerHook', interval=1))
        """)


def seg_data(data: dict) -> str:
    """The data part of :func:`seg_config`: ``crop_size`` (64 px), the
    pipelines and the loaders of a Cityscapes-layout dataset. Also for a
    config that inherits another one and only swaps in the tiny data."""
    return textwrap.dedent(f"""
        crop_size = (64, 64)
        train_pipeline = [
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations'),
            dict(type='RandomCrop', crop_size=crop_size),
            dict(type='PackSegInputs'),
        ]
        test_pipeline = [
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations'),
            dict(type='PackSegInputs'),
        ]
        train_dataloader = dict(
            batch_size=2, num_workers=0, persistent_workers=False,
            dataset=dict(data_root={data['data_root']!r},
                         pipeline=train_pipeline))
        val_dataloader = dict(
            batch_size=1, num_workers=0, persistent_workers=False,
            dataset=dict(data_root={data['data_root']!r},
                         pipeline=test_pipeline))
        test_dataloader = val_dataloader
        """)


def seg_config(path, data: dict, depth: int = 18) -> str:
    """mmseg PSPNet R-{depth} on a Cityscapes-layout dataset, 64 px."""
    return write(
        path, """
        _base_ = [
            'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py'
        ]
        """, seg_data(data), f"""
        data_preprocessor = dict(size=crop_size)
        model = dict(
            data_preprocessor=data_preprocessor,
            pretrained=None,
            backbone=dict(depth={depth}),
            decode_head=dict(in_channels={512 if depth < 50 else 2048}),
            auxiliary_head=None)
        train_cfg = dict(type='IterBasedTrainLoop', max_iters=2,
                         val_interval=2)
        default_hooks = dict(logger=dict(type='LoggerHook', interval=1),
                             checkpoint=dict(type='CheckpointHook',
                                             interval=2))
        """)


def cifar_classifier(width: int, num_classes: int = 5) -> dict:
    """A tiny mmpretrain classifier on mmkd's CIFAR ResNet-8 (grey input,
    stages of ``width``, ``2 * width``, ``4 * width`` channels), as a model
    dict: the student/teacher of the distiller unit tests."""
    return dict(
        type='ImageClassifier',
        _scope_='mmpretrain',
        backbone=dict(
            type='mmkd.CIFARResNet',
            arch=dict(depth=8, stem_channels=width, base_channels=width),
            in_channels=1),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(
            type='LinearClsHead',
            num_classes=num_classes,
            in_channels=width * 4,
            loss=dict(type='CrossEntropyLoss')),
        data_preprocessor=dict(
            type='ClsDataPreprocessor', mean=[0.], std=[255.]))


def save_cifar_teacher(path, num_classes: int = 5) -> str:
    """A checkpoint of ``cifar_classifier(8, num_classes)`` with random
    weights (seed 1): a stand-in for a trained teacher in unit tests."""
    import torch
    from mmengine.registry import init_default_scope

    from mmkd.registry import MODELS
    init_default_scope('mmpretrain')
    torch.manual_seed(1)
    teacher = MODELS.build(cifar_classifier(8, num_classes))
    torch.save({'state_dict': teacher.state_dict()}, path)
    return str(path)


def pspnet_segmentor(base: int,
                     channels: int = None,
                     size: int = 64,
                     num_classes: int = 3,
                     auxiliary_heads: int = 0) -> dict:
    """A real mmseg PSPNet (pool scales 1, 2) on a ResNetV1c-18 of width
    ``base`` (output stride 8), for ``size`` x ``size`` inputs; the decode
    head has ``channels`` channels (default ``base``). ``auxiliary_heads``
    > 0 adds mmseg's FCN auxiliary head on stage 3 (CE weight 0.4, as
    mmseg's PSPNet configs): one head, or a list of that many."""
    norm = dict(type='BN', requires_grad=True)
    model = dict(
        type='EncoderDecoder',
        _scope_='mmseg',
        data_preprocessor=dict(
            type='SegDataPreProcessor',
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            size=(size, size),
            seg_pad_val=255),
        backbone=dict(
            type='ResNetV1c',
            depth=18,
            base_channels=base,
            stem_channels=base,
            dilations=(1, 1, 2, 4),
            strides=(1, 2, 1, 1),
            norm_cfg=norm,
            contract_dilation=True),
        decode_head=dict(
            type='PSPHead',
            in_channels=base * 8,
            in_index=3,
            channels=base if channels is None else channels,
            pool_scales=(1, 2),
            dropout_ratio=0.0,
            num_classes=num_classes,
            norm_cfg=norm,
            loss_decode=dict(type='CrossEntropyLoss')),
        train_cfg=dict(),
        test_cfg=dict(mode='whole'))
    aux = dict(
        type='FCNHead',
        in_channels=base * 4,
        in_index=2,
        channels=base,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=num_classes,
        norm_cfg=norm,
        loss_decode=dict(type='CrossEntropyLoss', loss_weight=0.4))
    if auxiliary_heads == 1:
        model['auxiliary_head'] = aux
    elif auxiliary_heads > 1:
        model['auxiliary_head'] = [aux] * auxiliary_heads
    return model


def kd_fitnet_distiller(teacher_ckpt: str) -> dict:
    """A ``Distiller`` config over the tiny CIFAR classifiers (width 4 <-
    width 8, grey 16 px): Hinton KD on the logits and a FitNet hint on
    ``layer3`` through a ``ConvConnector``."""
    return dict(
        type='Distiller',
        _scope_='mmkd',
        student=cifar_classifier(4),
        teacher=dict(model=cifar_classifier(8), checkpoint=teacher_ckpt),
        taps=dict(
            s_logits='student.head.fc',
            t_logits='teacher.head.fc',
            s3='student.backbone.layer3',
            t3='teacher.backbone.layer3'),
        connectors=dict(
            hint=dict(type='ConvConnector', inputs='s3', targets='t3')),
        losses=dict(
            loss_kd=dict(
                type='KDLoss',
                inputs=dict(preds_S='s_logits', preds_T='t_logits')),
            loss_fitnet=dict(
                type='FitNetLoss', inputs=dict(preds_S='hint', preds_T='t3'))),
        probe_input_shape=(1, 16, 16))


def skd_pixel_distiller(teacher_ckpt: str, size: int = 64) -> dict:
    """An ``AdversarialDistiller`` config over tiny PSPNets (width 8 <- 16):
    SKD's pixel-wise term and a one-block holistic critic (8x8 logits for
    ``size`` 64)."""
    return dict(
        type='AdversarialDistiller',
        _scope_='mmkd',
        student=pspnet_segmentor(8, size=size),
        teacher=dict(
            model=pspnet_segmentor(16, size=size), checkpoint=teacher_ckpt),
        taps=dict(
            s_logits='student.decode_head.conv_seg',
            t_logits='teacher.decode_head.conv_seg'),
        losses=dict(
            loss_pi=dict(
                type='PixelWiseLoss',
                inputs=dict(preds_S='s_logits', preds_T='t_logits'))),
        # 8x8 logits: one stride-2 block, then the final 4x4 conv -> 1x1
        critic=dict(
            type='SKDDiscriminator',
            conv_dim=8,
            num_blocks=1,
            attention_after=(1, )),
        probe_input_shape=(3, size, size))
