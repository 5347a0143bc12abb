# ReviewKD resnet32x4 -> shufflenet-v2 on CIFAR-100 (official script: weight
# 8.0, linear warm-up over 20 epochs starting at 0). Student: the post-ReLU
# stage outputs + the pooled feature; teacher: the pre-ReLU residual sums of
# the last block of each stage + the pooled feature.
# The student's maps are half the teacher's size: the review path resizes
# (nearest) to the teacher's sizes, taken from `targets`.
_base_ = ['./baselines/shufflenet-v2_1xb128-240e_cifar100.py']

model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='Distiller',
    student=_base_.model,
    teacher=dict(
        config='{{fileDirname}}/baselines/resnet32x4_1xb128-240e_cifar100.py',
        # train it with that config, then copy its best checkpoint here
        checkpoint='checkpoints/reviewkd/resnet32x4_1xb128-240e_cifar100.pth'),
    taps=dict(
        s1='student.backbone.layer1',
        s2='student.backbone.layer2',
        s3='student.backbone.layer3',
        s4='student.neck.gap',
        t1='teacher.backbone.layer1.4.preact',
        t2='teacher.backbone.layer2.4.preact',
        t3='teacher.backbone.layer3.4.preact',
        t4='teacher.neck.gap'),
    connectors=dict(
        review=dict(
            type='ReviewKDConnector',
            inputs=['s1', 's2', 's3', 's4'],
            targets=['t1', 't2', 't3', 't4'])),
    losses=dict(
        loss_hcl=dict(
            type='HCLLoss',
            loss_weight=8.0,
            inputs=dict(preds_S='review', preds_T=['t1', 't2', 't3', 't4']))),
    probe_input_shape=(3, 32, 32))

custom_hooks = [dict(type='mmkd.DistillLossWarmupHook', warmup=20)]
