# DIST (Huang et al., NeurIPS 2022) resnet32x4 -> resnet8x4 on CIFAR-100, as
# the authors' dist_cifar.yaml (hunto/image_classification_sota): T = 4,
# beta = gamma = 1, the DIST term weighted 2 (docs/en/methods.md#dist), on
# the resnet8x4 baseline of the ReviewKD configs (batch 128 at lr 0.1: the
# authors' lr per sample); SGD without nesterov, lr x0.1 at 150, 180, 210.
_base_ = ['../vanilla/cifar100/resnet8x4_1xb128-240e_cifar100.py']
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='Distiller',
    student=_base_.model,
    teacher=dict(
        config='{{fileDirname}}/../vanilla/cifar100/'
        'resnet32x4_1xb128-240e_cifar100.py',
        checkpoint='checkpoints/reviewkd/resnet32x4_1xb128-240e_cifar100.pth'),
    taps=dict(s_logits='student.head.fc', t_logits='teacher.head.fc'),
    losses=dict(
        loss_dist=dict(
            type='DISTLoss',
            beta=1.0,
            gamma=1.0,
            tau=4.0,
            loss_weight=2.0,
            inputs=dict(preds_S='s_logits', preds_T='t_logits'))),
    probe_input_shape=(3, 32, 32))

optim_wrapper = dict(optimizer=dict(nesterov=False))
param_scheduler = dict(milestones=[150, 180, 210])
