# Hinton KD (T=4) of ResNet-34 into ResNet-18 on ImageNet, on mmpretrain's
# own ResNet-18 config (data, schedule, evaluator unchanged).
_base_ = ['mmpretrain::resnet/resnet18_8xb32_in1k.py']
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='Distiller',
    student=_base_.model,
    teacher=dict(
        config='mmpretrain::resnet/resnet34_8xb32_in1k.py',
        checkpoint='checkpoints/resnet34_8xb32_in1k.pth'),
    taps=dict(s_logits='student.head.fc', t_logits='teacher.head.fc'),
    losses=dict(
        loss_kd=dict(
            type='KDLoss',
            tau=4.0,
            loss_weight=1.0,
            inputs=dict(preds_S='s_logits', preds_T='t_logits'))))
