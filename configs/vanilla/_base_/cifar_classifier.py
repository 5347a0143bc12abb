# The classifier of the CRD/ReviewKD CIFAR code around a backbone: global
# average pooling and a linear head (CIFAR-100 classes). A config states its
# backbone and the head's in_channels (and num_classes for other datasets).
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    neck=dict(type='GlobalAveragePooling'),
    # init_cfg=None keeps PyTorch's default Linear init, as the authors' FC.
    head=dict(
        type='LinearClsHead',
        num_classes=100,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        init_cfg=None))
