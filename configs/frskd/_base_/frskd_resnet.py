# FRSKD (Ji et al., CVPR 2021) wiring for a student whose four stages are
# `backbone.layer1..4` (mmpretrain `ResNet`, `ResNet_CIFAR`) and whose logits
# are the output of `head.fc`. Each FRSKD config uses it as
#     model = dict(_delete_=True, student=_base_.model, **_base_.frskd)
#     model['connectors']['self_teacher']['num_classes'] = <classes>
# and sets custom_imports = dict(imports=['mmkd'], ...).
# Total loss (docs/en/methods.md#frskd-losses), the student's own CE coming
# from its head:
#     CE(student) + CE(self-teacher) + alpha * KD_T + beta * sum_i AT_i
# with alpha = 2, beta = 100, T = 4 (the authors' CIFAR-100 values).
# The stage outputs of mmpretrain's ResNets are exactly the authors'
# post-ReLU features [relu(out1), .., relu(out4)] (see BiFPNc's docstring).
frskd_stages = ['s_layer1', 's_layer2', 's_layer3', 's_layer4']
frskd = dict(
    _scope_='mmkd',
    type='Distiller',
    teacher=None,  # self-distillation: the self-teacher is a connector
    taps=dict(
        s_layer1='student.backbone.layer1',
        s_layer2='student.backbone.layer2',
        s_layer3='student.backbone.layer3',
        s_layer4='student.backbone.layer4',
        s_logits='student.head.fc'),
    connectors=dict(
        # BiFPNc over the (not detached) student features: its CE also
        # trains the student backbone, as in the authors' code.
        self_teacher=dict(
            type='BiFPNc',
            inputs=frskd_stages,
            num_classes=None,  # set by each config
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
