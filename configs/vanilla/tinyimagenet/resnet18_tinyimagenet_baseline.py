# CE-only twin of ../../frskd/resnet18_tinyimagenet.py: the authors'
# TinyImageNet setting, trained at **32 px** with the CIFAR ResNet-18
# (cifarresnet18): RandomResizedCrop(32) + flip, test Resize(32), their
# mean/std; 200 classes. ImageNet-style folders read by CustomDataset:
# data/tiny-imagenet-200/train/<wnid>/... (the release's layout) and
# data/tiny-imagenet-200/valid/<wnid>/*.JPEG (the release's val/ images
# sorted into class folders by val_annotations.txt, see
# configs/frskd/README.md).
_base_ = ['../cifar100/resnet18_cifar100_baseline.py']

model = dict(head=dict(num_classes=200))
data_preprocessor = dict(
    num_classes=200,
    mean=[122.451, 114.2655, 101.3625],
    std=[70.635, 68.6205, 71.9355],
    to_rgb=True)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=32),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=32, edge='short'),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root='data/tiny-imagenet-200',
        data_prefix='train',
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root='data/tiny-imagenet-200',
        data_prefix='valid',
        pipeline=test_pipeline))
test_dataloader = val_dataloader
