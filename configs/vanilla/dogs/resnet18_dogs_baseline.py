# CE-only twin of ../../frskd/resnet18_dogs.py: ResNet-18 from scratch on
# Stanford Dogs (120 classes) at 224 px, the CUB setting
# (../cub/resnet18_cub_baseline.py) on an ImageNet-style folder read by
# mmpretrain's CustomDataset, laid out as the authors' ImageFolder loader
# expects: data/dogs/{train,valid}/<class>/*.jpg
_base_ = ['../cub/resnet18_cub_baseline.py']

model = dict(head=dict(num_classes=120))
data_preprocessor = dict(num_classes=120)
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root='data/dogs',
        data_prefix='train',
        pipeline=_base_.train_pipeline))
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root='data/dogs',
        data_prefix='valid',
        pipeline=_base_.test_pipeline))
test_dataloader = val_dataloader
