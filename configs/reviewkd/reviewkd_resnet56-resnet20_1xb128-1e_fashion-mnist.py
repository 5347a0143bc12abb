# ReviewKD ResNet-56 -> ResNet-20 on Fashion-MNIST, the student baseline's
# schedule. As the CIFAR configs: post-ReLU student stages + pooled feature,
# pre-ReLU teacher stages + pooled feature, review path (mid 64), HCL with
# the official weight of this pair (0.6). The authors' warm-up (20 of 240
# epochs, from 0) is kept as the same fraction of this run: 39 of its 469
# iterations.
_base_ = [
    '../vanilla/fashion-mnist/resnet20_1xb128-1e_fashion-mnist.py',
    './_base_/reviewkd_cifar.py'
]

model = dict(
    _base_.reviewkd,
    _delete_=True,
    student=_base_.model,
    teacher=dict(
        config='{{fileDirname}}/../vanilla/fashion-mnist/'
        'resnet56_1xb128-3e_fashion-mnist.py',
        # tools/experiments/reviewkd_fashion_mnist.sh sets the one it trains
        checkpoint='checkpoints/reviewkd/resnet56_fashion-mnist.pth'),
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
    dict(type='mmkd.DistillLossWarmupHook', warmup=39, by_epoch=False)
]
