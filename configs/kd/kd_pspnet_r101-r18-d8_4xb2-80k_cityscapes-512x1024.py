# Pixel-wise Hinton KD (T=1, every pixel a sample) of PSPNet-R101 into
# PSPNet-R18 on Cityscapes, on mmseg's own config.
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
        s_logits='student.decode_head.conv_seg',
        t_logits='teacher.decode_head.conv_seg'),
    losses=dict(
        loss_kd=dict(
            type='KDLoss',
            tau=1.0,
            loss_weight=1.0,
            inputs=dict(preds_S='s_logits', preds_T='t_logits'))))
