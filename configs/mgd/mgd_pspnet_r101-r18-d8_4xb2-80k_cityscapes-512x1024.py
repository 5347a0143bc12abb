# MGD PSPNet R-101 -> PSPNet R-18 on Cityscapes, as the authors'
# seg/configs/distillers/mgd/psp_r101_distill_psp_r18_40k_512x512_city.py:
# the backbones' last stage (R-18's 512 channels aligned to R-101's 2048 by
# the 1x1 conv), spatial mask lambda 0.75, alpha 2e-5, over mmseg's own R-18
# config, plus their logit term: channel-wise KL on the 1/8-resolution logits
# (CWD, tau 4, weight 3; use_logit=True). configs/mgd/README.md.
_base_ = ['mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py']
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='Distiller',
    student=_base_.model,
    teacher=dict(
        config='mmseg::pspnet/pspnet_r101-d8_4xb2-40k_cityscapes-512x1024.py',
        checkpoint='checkpoints/pspnet_r101-d8_512x1024_40k_cityscapes.pth'),
    taps=dict(
        s4=dict(path='student.backbone', index=-1),
        t4=dict(path='teacher.backbone', index=-1),
        s_logits='student.decode_head.conv_seg',
        t_logits='teacher.decode_head.conv_seg'),
    connectors=dict(
        mgd=dict(type='MGDConnector', mask_ratio=0.75, inputs='s4',
                 targets='t4')),
    losses=dict(
        loss_mgd=dict(type='MGDLoss', alpha=2e-5,
                      inputs=dict(preds_S='mgd', preds_T='t4')),
        loss_cwd=dict(type='CWDLoss', tau=4.0, loss_weight=3.0,
                      inputs=dict(preds_S='s_logits', preds_T='t_logits'))))
