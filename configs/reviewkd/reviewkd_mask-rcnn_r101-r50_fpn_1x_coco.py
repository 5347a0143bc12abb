# ReviewKD on the FPN of Mask R-CNN R101 -> R50 (official weight 0.8, no
# warm-up), on mmdet's own 1x config: review path over p2..p6, HCL against
# the teacher's FPN outputs; the teacher runs backbone + neck only.
_base_ = ['mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py']
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='Distiller',
    student=_base_.model,
    teacher=dict(
        config='mmdet::mask_rcnn/mask-rcnn_r101_fpn_1x_coco.py',
        checkpoint='checkpoints/mask-rcnn_r101_fpn_1x_coco.pth'),
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
            loss_weight=0.8,
            inputs=dict(preds_S='review', preds_T='t_fpn'))))
