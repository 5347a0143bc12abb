# CWD (Shu et al., ICCV 2021) on the 1/8-resolution logits of PSPNet-R101
# -> PSPNet-R18 on Cityscapes, as the authors' segmentation code
# (irfanICMLL/TorchDistiller SemSeg-distill, `exp_cwd.sh channel kl 3 4`):
# channel-wise KL with T = 4, weight 3 (docs/en/methods.md#cwd), over mmseg's
# own student config (data, schedule, evaluator unchanged).
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
        # 1/8-resolution class logits (no upsampling), as the authors
        s_logits='student.decode_head.conv_seg',
        t_logits='teacher.decode_head.conv_seg'),
    losses=dict(
        loss_cwd=dict(
            type='CWDLoss',
            tau=4.0,
            loss_weight=3.0,
            inputs=dict(preds_S='s_logits', preds_T='t_logits'))))
