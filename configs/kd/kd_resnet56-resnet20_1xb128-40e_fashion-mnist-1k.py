# Hinton KD ResNet-56 -> ResNet-20 in the few-label protocol
# (configs/kd/README.md): CE + KL(T=4) * T^2 with weights 1 and 1 (the
# `--use-kl` option of the ReviewKD CIFAR code), the released teacher
# (88.15 top-1, trained on the complete training set), on exactly the data,
# lr and schedule of its baseline.
_base_ = ['../vanilla/fashion-mnist/resnet20_1xb128-40e_fashion-mnist-1k.py']

model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='Distiller',
    student=_base_.model,
    teacher=dict(
        config='{{fileDirname}}/../vanilla/fashion-mnist/'
        'resnet56_1xb128-3e_fashion-mnist.py',
        checkpoint='{{fileDirname}}/../../model_zoo/reviewkd/'
        'resnet56_fashion-mnist_teacher-2994e984.pth'),
    taps=dict(s_logits='student.head.fc', t_logits='teacher.head.fc'),
    losses=dict(
        loss_kd=dict(
            type='KDLoss',
            tau=4.0,
            loss_weight=1.0,
            inputs=dict(preds_S='s_logits', preds_T='t_logits'))),
    probe_input_shape=(1, 28, 28))
