# Hinton KD ResNet-56 -> ResNet-20 on Fashion-MNIST, the student baseline's
# schedule: CE + KL(T=4) * T^2 with weights 1 and 1, as the `--use-kl`
# option (DistillKL) of the ReviewKD CIFAR code.
_base_ = ['../vanilla/fashion-mnist/resnet20_1xb128-1e_fashion-mnist.py']

model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='Distiller',
    student=_base_.model,
    teacher=dict(
        config='{{fileDirname}}/../vanilla/fashion-mnist/'
        'resnet56_1xb128-3e_fashion-mnist.py',
        # tools/experiments/reviewkd_fashion_mnist.sh sets the one it trains
        checkpoint='checkpoints/reviewkd/resnet56_fashion-mnist.pth'),
    taps=dict(s_logits='student.head.fc', t_logits='teacher.head.fc'),
    losses=dict(
        loss_kd=dict(
            type='KDLoss',
            tau=4.0,
            loss_weight=1.0,
            inputs=dict(preds_S='s_logits', preds_T='t_logits'))),
    probe_input_shape=(1, 28, 28))
