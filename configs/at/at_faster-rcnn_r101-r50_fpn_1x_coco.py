# Attention transfer over the five FPN levels of Faster R-CNN R101 -> R50.
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
    losses=dict(
        loss_at=dict(
            type='ATLoss',
            loss_weight=1000.0,  # beta on the sum, as the authors' code
            inputs=dict(preds_S='s_fpn', preds_T='t_fpn'))))
