# DIST (Huang et al., NeurIPS 2022) DeepLabV3-R101 -> DeepLabV3-R18 on
# Cityscapes, as the authors' segmentation code (hunto/DIST_KD
# segmentation/train_kd.py): DIST (T = 1, beta = gamma = 1) on the 1/8
# logits, every pixel a sample, weight 1 on the decode heads' and 0.4 on the
# auxiliary heads' logits (the taps run the teacher's auxiliary head), over
# mmseg's student config unchanged (docs/en/methods.md#dist).
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
        t_logits='teacher.decode_head.conv_seg',
        s_aux=dict(path='student.auxiliary_head.conv_seg',
                   run_head='auxiliary_head'),
        t_aux=dict(path='teacher.auxiliary_head.conv_seg',
                   run_head='auxiliary_head')),
    losses=dict(
        loss_dist=dict(type='DISTLoss', tau=1.0, loss_weight=1.0,
                       inputs=dict(preds_S='s_logits', preds_T='t_logits')),
        loss_dist_aux=dict(type='DISTLoss', tau=1.0, loss_weight=0.4,
                           inputs=dict(preds_S='s_aux', preds_T='t_aux'))))
