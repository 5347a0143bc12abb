# PKD (Cao et al., NeurIPS 2022) on the FPN of Faster R-CNN R-101 -> R-50 on
# COCO, as the authors' MMRazor config
# (pkd_fpn_faster-rcnn_r101_faster-rcnn_r50_2x_coco.py): Pearson-correlation
# imitation, weight 6, on the FPN levels 0-3 (P2-P5; P6 is not distilled),
# summed (docs/en/methods.md#pkd), over mmdet's own 2x student config.
_base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_2x_coco.py']
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='Distiller',
    student=_base_.model,
    teacher=dict(
        config='mmdet::faster_rcnn/faster-rcnn_r101_fpn_2x_coco.py',
        checkpoint='checkpoints/faster-rcnn_r101_fpn_2x_coco.pth'),
    # s0..s3 / t0..t3: the first four outputs of each detector's neck
    taps={
        f'{p}{i}': dict(path=f'{m}.neck', index=i)
        for p, m in (('s', 'student'), ('t', 'teacher'))
        for i in range(4)
    },
    losses=dict(
        loss_pkd=dict(
            type='PKDLoss',
            loss_weight=6.0,
            inputs=dict(
                preds_S=['s0', 's1', 's2', 's3'],
                preds_T=['t0', 't1', 't2', 't3']))))
