# ReviewKD ResNet-56 -> ResNet-20 in the few-label protocol
# (configs/kd/README.md): the method of
# reviewkd_resnet56-resnet20_1xb128-1e_fashion-mnist.py (HCL weight 0.6, the
# authors' value for this pair; warm-up over 20/240 of the iterations) with
# the released teacher, on exactly the data, lr and schedule of its
# baseline.
_base_ = [
    './resnet20_1xb128-40e_fashion-mnist-1k.py',
    '../../configs/reviewkd/_base_/reviewkd_cifar.py'
]

model = dict(
    _base_.reviewkd,
    _delete_=True,
    student=_base_.model,
    teacher=dict(
        config='{{fileDirname}}/resnet56_1xb128-3e_fashion-mnist.py',
        checkpoint='{{fileDirname}}/../../model_zoo/reviewkd/'
        'resnet56_fashion-mnist_teacher-2994e984.pth'),
    taps=dict(
        _base_.reviewkd.taps,
        t1='teacher.backbone.layer1.8.preact',
        t2='teacher.backbone.layer2.8.preact',
        t3='teacher.backbone.layer3.8.preact',
        t4='teacher.neck.gap'),
    losses=dict(
        loss_hcl=dict(_base_.reviewkd.losses.loss_hcl, loss_weight=0.6)),
    probe_input_shape=(1, 28, 28))

custom_hooks = [
    dict(type='mmkd.DistillLossWarmupHook', warmup=27, by_epoch=False)
]
