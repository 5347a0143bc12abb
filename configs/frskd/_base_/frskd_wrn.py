# FRSKD wiring for mmkd's `WideResNet(style='frskd')` student (the authors'
# wrn.py): three stage features relu(block{k}bn(stage_k)), i.e. the outputs
# of `block2.layer.0.relu1`, `block3.layer.0.relu1` and `relu` (see the
# WideResNet docstring), logits from `head.fc`. Same losses and weights as
# frskd_resnet.py, used the same way.
frskd_stages = ['s_block1', 's_block2', 's_block3']
frskd = dict(
    _scope_='mmkd',
    type='Distiller',
    teacher=None,
    taps=dict(
        s_block1='student.backbone.block2.layer.0.relu1',
        s_block2='student.backbone.block3.layer.0.relu1',
        s_block3='student.backbone.relu',
        s_logits='student.head.fc'),
    connectors=dict(
        self_teacher=dict(
            type='BiFPNc',
            inputs=frskd_stages,
            num_classes=None,
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
            inputs=dict(preds_S=frskd_stages, preds_T='self_teacher.feats'))))
