# What the ReviewKD configs of the official CIFAR setting share: four taps
# per network (three stage outputs + the pooled feature), the review path
# over them (default mid channels: min(512, the student's last width)), HCL
# against the teacher's taps, a 32x32 probe and the HCL weight's linear
# warm-up over the first 20 epochs (from 0). A pair's config inherits its
# student's baseline and this file, and builds its model from `reviewkd`
# with the student, the teacher, the teacher's taps t1-t4, the student's
# s1-s3 when they are not the stage outputs below, and the HCL weight:
#   model = dict(_base_.reviewkd, _delete_=True, student=_base_.model,
#                teacher=dict(...), taps=dict(_base_.reviewkd.taps, t1=...),
#                losses=dict(loss_hcl=dict(_base_.reviewkd.losses.loss_hcl,
#                                          loss_weight=...)))
reviewkd = dict(
    _scope_='mmkd',
    type='Distiller',
    # the post-ReLU stage outputs of the CIFAR ResNets / ShuffleNets
    taps=dict(
        s1='student.backbone.layer1',
        s2='student.backbone.layer2',
        s3='student.backbone.layer3',
        s4='student.neck.gap'),
    connectors=dict(
        review=dict(
            type='ReviewKDConnector',
            inputs=['s1', 's2', 's3', 's4'],
            targets=['t1', 't2', 't3', 't4'])),
    losses=dict(
        loss_hcl=dict(
            type='HCLLoss',
            inputs=dict(preds_S='review', preds_T=['t1', 't2', 't3', 't4']))),
    probe_input_shape=(3, 32, 32))

custom_hooks = [dict(type='mmkd.DistillLossWarmupHook', warmup=20)]
