# FitNets: the student's stage-3 output, through a 1x1 conv-BN regressor
# (channels inferred), imitates the teacher's stage-3 output.
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
    taps=dict(s3='student.backbone.layer3', t3='teacher.backbone.layer3'),
    connectors=dict(
        hint=dict(type='ConvConnector', inputs='s3', targets='t3')),
    losses=dict(
        loss_fitnet=dict(
            type='FitNetLoss', inputs=dict(preds_S='hint', preds_T='t3'))))
