# CIFAR ShuffleNetV2 (1x, CRD/ReviewKD code) on CIFAR-100, the authors'
# schedule with lr 0.02 (their train.py for 'shuffle' students).
_base_ = ['../_base_/cifar100_bs128_240e.py']
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(type='mmkd.CIFARShuffleNetV2', out_indices=(3, )),
    neck=dict(type='GlobalAveragePooling'),
    # init_cfg=None keeps PyTorch's default Linear init, as the authors' FC.
    head=dict(
        type='LinearClsHead',
        num_classes=100,
        in_channels=1024,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        init_cfg=None))

optim_wrapper = dict(optimizer=dict(lr=0.02))
