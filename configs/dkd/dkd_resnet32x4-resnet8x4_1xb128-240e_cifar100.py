# DKD (Zhao et al., CVPR 2022) resnet32x4 -> resnet8x4 on CIFAR-100, as the
# authors' mdistiller code (configs/cifar100/dkd/res32x4_res8x4.yaml and the
# DKD defaults of mdistiller/engine/cfg.py):
#   loss = CE(student) + min(1, epoch / 20) * (alpha * TCKD + beta * NCKD)
# with alpha = 1, beta = 8, T = 4 and the epoch counted from 1
# (docs/en/methods.md#dkd).
# Student, data and schedule: the resnet8x4 baseline of configs/vanilla/ (the
# CRD CIFAR-100 setting of ReviewKD, batch 128, lr 0.1); the authors ran
# batch 64 at lr 0.05 (the same lr per sample), SGD without nesterov, and
# divided the lr by 10 from the 0-based epochs 150, 180 and 210; both are set
# below.
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
        # train it with that config, then copy its best checkpoint here
        checkpoint='checkpoints/reviewkd/resnet32x4_1xb128-240e_cifar100.pth'),
    # the logits: output of the linear classifier of each network
    taps=dict(s_logits='student.head.fc', t_logits='teacher.head.fc'),
    losses=dict(
        loss_dkd=dict(
            type='DKDLoss',
            alpha=1.0,
            beta=8.0,
            tau=4.0,
            loss_weight=1.0,
            inputs=dict(preds_S='s_logits', preds_T='t_logits',
                        gt='gt_label'))),
    probe_input_shape=(3, 32, 32))

optim_wrapper = dict(optimizer=dict(nesterov=False))
param_scheduler = dict(milestones=[150, 180, 210])

# mdistiller's warm-up: min(1, epoch / 20) with epochs counted from 1.
custom_hooks = [dict(type='mmkd.DistillLossWarmupHook', warmup=20, offset=1)]
