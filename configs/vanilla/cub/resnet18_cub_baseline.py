# CE-only twin of ../../frskd/resnet18_cub.py: ImageNet-style ResNet-18 trained
# from scratch on CUB-200-2011 (mmpretrain's `CUB`, official train/test split)
# at 224 px, as FRSKD's fine-grained setting. The authors' resnet18 is
# mmpretrain's ResNet (ReLU moved across the block boundary, same function)
# with the same init (Kaiming-normal fan-out convs, BN 1/0, no zero-init of the
# residual BNs, PyTorch-default FC). SGD lr 0.1, momentum 0.9, wd 1e-4, 200
# epochs, x0.1 at 100 and 150; total batch 128 = 8 GPUs x 16 (the authors' code
# default; see configs/frskd/README.md for the batch size question).
_base_ = [
    'mmpretrain::_base_/models/resnet18.py',
    'mmpretrain::_base_/datasets/cub_bs8_448.py',
    'mmpretrain::_base_/schedules/cifar10_bs128.py',
    'mmpretrain::_base_/default_runtime.py',
]

model = dict(
    backbone=dict(zero_init_residual=False),
    head=dict(num_classes=200, init_cfg=None))

# The authors' transforms (classification/dataset.py, ImageFolder loader):
# RandomResizedCrop(224) + flip; test Resize(256) + CenterCrop(224); ImageNet
# mean/std (the base's data_preprocessor).
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
train_dataloader = dict(batch_size=16, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=16, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
