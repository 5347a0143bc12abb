# FRSKD (Ji et al., CVPR 2021) wiring for the three-stage ResNet-14 student
# of the Fashion-MNIST experiments (stages (16, 28, 28) .. (64, 7, 7); logits
# from `head.fc`). Each config uses it as
#     model = dict(_delete_=True, student=_base_.model, **_base_.frskd)
#   loss = CE(student)                        the student's own head
#        + CE(self-teacher logits, labels)    trains BiFPNc (and, through the
#                                             undetached features, the student)
#        + alpha * KD_T(student || self-teacher)         alpha 2, T 4
#        + beta * sum_stages AT(student, self-teacher)   beta 100
# KD and AT detach the self-teacher side (docs/en/methods.md#frskd-losses).
frskd_stages = ['s_layer1', 's_layer2', 's_layer3']
frskd = dict(
    _scope_='mmkd',
    type='Distiller',
    teacher=None,
    taps=dict(
        s_layer1='student.backbone.layer1',
        s_layer2='student.backbone.layer2',
        s_layer3='student.backbone.layer3',
        s_logits='student.head.fc'),
    connectors=dict(
        self_teacher=dict(
            type='BiFPNc',  # in_channels inferred: [16, 32, 64]
            inputs=frskd_stages,
            num_classes=10,
            width=2,
            depth=2)),
    losses=dict(
        loss_self_teacher_ce=dict(
            type='GTCrossEntropyLoss',
            loss_weight=1.0,
            inputs=dict(logits='self_teacher.logits', gt='gt_label')),
        loss_kd=dict(
            type='KDLoss',
            tau=4.0,
            loss_weight=2.0,  # alpha
            inputs=dict(preds_S='s_logits', preds_T='self_teacher.logits')),
        loss_at=dict(
            type='ATLoss',
            p=2,
            loss_weight=100.0,  # beta
            inputs=dict(preds_S=frskd_stages, preds_T='self_teacher.feats'))),
    probe_input_shape=(1, 28, 28))
