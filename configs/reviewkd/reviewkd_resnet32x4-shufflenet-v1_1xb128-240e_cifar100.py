# ReviewKD resnet32x4 -> shufflenet-v1 on CIFAR-100 (official script: weight
# 5.0, linear warm-up over 20 epochs starting at 0). Student: the post-ReLU
# stage outputs + the pooled feature; teacher: the pre-ReLU residual sums of
# the last block of each stage + the pooled feature.
# The student's maps are half the teacher's size: the review path resizes
# (nearest) to the teacher's sizes, taken from `targets`.
_base_ = [
    '../vanilla/cifar100/shufflenet-v1_1xb128-240e_cifar100.py',
    './_base_/reviewkd_cifar.py'
]

model = dict(
    _base_.reviewkd,
    _delete_=True,
    student=_base_.model,
    teacher=dict(
        config='{{fileDirname}}/../vanilla/cifar100/'
        'resnet32x4_1xb128-240e_cifar100.py',
        # train it with that config, then copy its best checkpoint here
        checkpoint='checkpoints/reviewkd/resnet32x4_1xb128-240e_cifar100.pth'),
    taps=dict(
        _base_.reviewkd.taps,
        t1='teacher.backbone.layer1.4.preact',
        t2='teacher.backbone.layer2.4.preact',
        t3='teacher.backbone.layer3.4.preact',
        t4='teacher.neck.gap'),
    losses=dict(
        loss_hcl=dict(_base_.reviewkd.losses.loss_hcl, loss_weight=5.0)))
