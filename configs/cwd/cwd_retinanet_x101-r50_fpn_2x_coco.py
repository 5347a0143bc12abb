# CWD (Shu et al., ICCV 2021) on the FPN of RetinaNet X-101-64x4d -> R-50 on
# COCO, as the authors' detection config (pppppM/mmdetection-distiller,
# cwd_retina_rx101_64x4d_distill_retina_r50_fpn_2x_coco.py): channel-wise KL
# with T = 1, weight 5, on the FPN levels 0-3 (P3-P6; P7 is not distilled),
# summed (docs/en/methods.md#cwd), over mmdet's own 2x student config.
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_2x_coco.py']
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='Distiller',
    student=_base_.model,
    teacher=dict(
        config='mmdet::retinanet/retinanet_x101-64x4d_fpn_1x_coco.py',
        checkpoint='checkpoints/retinanet_x101-64x4d_fpn_1x_coco.pth'),
    # s0..s3 / t0..t3: the first four outputs of each detector's neck
    taps={
        f'{p}{i}': dict(path=f'{m}.neck', index=i)
        for p, m in (('s', 'student'), ('t', 'teacher'))
        for i in range(4)
    },
    losses=dict(
        loss_cwd=dict(
            type='CWDLoss',
            tau=1.0,
            loss_weight=5.0,
            inputs=dict(
                preds_S=['s0', 's1', 's2', 's3'],
                preds_T=['t0', 't1', 't2', 't3']))))
