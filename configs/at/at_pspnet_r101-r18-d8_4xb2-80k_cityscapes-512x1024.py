# Attention transfer over the four backbone stages of PSPNet R101 -> R18.
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
    taps=dict(s_stages='student.backbone', t_stages='teacher.backbone'),
    losses=dict(
        loss_at=dict(
            type='ATLoss',
            loss_weight=1000.0,  # beta on the sum, as the authors' code
            inputs=dict(preds_S='s_stages', preds_T='t_stages'))))
