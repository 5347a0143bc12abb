# FitNets on the last backbone stage: R18 (512 ch) -> 1x1 conv-BN -> R101's
# 2048 channels (inferred).
_base_ = ['mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py']
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='Distiller',
    student=_base_.model,
    teacher=dict(
        config='mmseg::pspnet/pspnet_r101-d8_4xb2-80k_cityscapes-512x1024.py',
        checkpoint='checkpoints/pspnet_r101-d8_4xb2-80k_cityscapes.pth'),
    taps=dict(
        s4=dict(path='student.backbone', index=-1),
        t4=dict(path='teacher.backbone', index=-1)),
    connectors=dict(hint=dict(type='ConvConnector', inputs='s4', targets='t4')),
    losses=dict(
        loss_fitnet=dict(
            type='FitNetLoss', inputs=dict(preds_S='hint', preds_T='t4'))))
