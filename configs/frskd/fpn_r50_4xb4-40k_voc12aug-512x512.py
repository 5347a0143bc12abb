# FRSKD for semantic segmentation (Ji et al., CVPR 2021, Sec. 4.3; the
# authors' segmentation/ code): a BiFPNSeg self-teacher on the student's FPN
# outputs (the analogue of their BiFPN1 outputs) predicts dense logits.
#   loss = CE(student) + CE(self-teacher) + alpha * pixel-KD(T=1)
#          + beta * sum over the 4 FPN levels of AT,  alpha 1, beta 50
# KD/AT are off for the first 2/3 of training and then ramp up as
# exp(-5 (1 - t)^2) (their 40 of 60 epochs, here iterations).
_base_ = ['../vanilla/voc12aug/fpn_r50_4xb4-40k_voc12aug-512x512_baseline.py']
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='Distiller',
    student=_base_.model,
    teacher=None,
    taps=dict(
        s_neck='student.neck',  # 4 levels, strides 4..32, 256 channels
        s_logits='student.decode_head.conv_seg'),  # (B, 21, H/4, W/4)
    connectors=dict(
        self_teacher=dict(
            type='BiFPNSeg',
            inputs='s_neck',
            targets='s_logits',  # logits resized to the student's
            num_classes=21,
            num_layers=2,
            head_channels=256)),
    losses=dict(
        loss_self_teacher_ce=dict(
            type='GTCrossEntropyLoss',
            ignore_index=255,
            loss_weight=1.0,
            inputs=dict(logits='self_teacher.logits', gt='gt_sem_seg')),
        loss_kd=dict(
            type='KDLoss',
            tau=1.0,
            loss_weight=1.0,  # alpha
            inputs=dict(preds_S='s_logits', preds_T='self_teacher.logits')),
        loss_at=dict(
            type='ATLoss',
            p=2,
            loss_weight=50.0,  # beta
            inputs=dict(preds_S='s_neck', preds_T='self_teacher.feats'))),
    probe_input_shape=(3, 64, 64))

custom_hooks = [
    dict(
        type='mmkd.DistillLossRampUpHook',
        start=26667,
        length=13333,
        by_epoch=False,
        losses=['loss_kd', 'loss_at'])
]
