# DIST (Huang et al., NeurIPS 2022) DeepLabV3-R101 -> DeepLabV3-R18 on
# Cityscapes, as the authors' segmentation code (hunto/DIST_KD
# segmentation/, train_kd.py): DIST on the 1/8-resolution logits, every
# pixel a sample, T = 1, beta = gamma = 1, weight 1 (docs/en/methods.md#dist),
# over mmseg's own student config (data, schedule, evaluator unchanged).
# The authors' 0.4 x DIST on the auxiliary heads' logits is not included:
# the frozen teacher runs in tensor mode, without its auxiliary head.
_base_ = ['mmseg::deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py']
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='Distiller',
    student=_base_.model,
    teacher=dict(
        config='mmseg::deeplabv3/'
        'deeplabv3_r101-d8_4xb2-80k_cityscapes-512x1024.py',
        checkpoint='checkpoints/deeplabv3_r101-d8_4xb2-80k_cityscapes.pth'),
    taps=dict(
        s_logits='student.decode_head.conv_seg',
        t_logits='teacher.decode_head.conv_seg'),
    losses=dict(
        loss_dist=dict(
            type='DISTLoss',
            tau=1.0,
            loss_weight=1.0,
            inputs=dict(preds_S='s_logits', preds_T='t_logits'))))
