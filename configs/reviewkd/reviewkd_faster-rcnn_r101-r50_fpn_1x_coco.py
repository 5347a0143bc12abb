# ReviewKD on the FPN of Faster R-CNN R101 -> R50 (official weight 1.0, no
# warm-up), on mmdet's own 1x config: the review path (ABF, 256 mid channels)
# runs over the student's p2..p6 from p6 down, and HCL compares each level
# with the teacher's FPN output. The teacher runs its backbone and neck only.
_base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py']
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='Distiller',
    student=_base_.model,
    teacher=dict(
        config='mmdet::faster_rcnn/faster-rcnn_r101_fpn_1x_coco.py',
        checkpoint='checkpoints/faster-rcnn_r101_fpn_1x_coco.pth'),
    taps=dict(s_fpn='student.neck', t_fpn='teacher.neck'),
    connectors=dict(
        review=dict(
            type='ReviewKDConnector',
            mid_channels=256,
            inputs='s_fpn',
            targets='t_fpn')),
    losses=dict(
        loss_hcl=dict(
            type='HCLLoss',
            loss_weight=1.0,
            inputs=dict(preds_S='review', preds_T='t_fpn'))))
