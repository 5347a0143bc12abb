# ReviewKD wrn-40-2 -> shufflenet-v1 on CIFAR-100 (official script: weight 5.0,
# linear warm-up over 20 epochs starting at 0). Student: the post-ReLU stage
# outputs + the pooled feature; teacher: each stage output through the next BN
# without its ReLU + the pooled feature.
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
        'wrn-40-2_1xb128-240e_cifar100.py',
        # train it with that config, then copy its best checkpoint here
        checkpoint='checkpoints/reviewkd/wrn-40-2_1xb128-240e_cifar100.pth'),
    taps=dict(
        _base_.reviewkd.taps,
        t1='teacher.backbone.block2.layer.0.bn1',
        t2='teacher.backbone.block3.layer.0.bn1',
        t3='teacher.backbone.bn1',
        t4='teacher.neck.gap'),
    losses=dict(
        loss_hcl=dict(_base_.reviewkd.losses.loss_hcl, loss_weight=5.0)))
