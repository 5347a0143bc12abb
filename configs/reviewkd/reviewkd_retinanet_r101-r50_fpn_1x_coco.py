# ReviewKD on the FPN of RetinaNet R101 -> R50 (official weight 1.0, no
# warm-up), on mmdet's own 1x config: the review path and HCL run over the
# five levels the heads use, p3..p7 (the neck's outputs).
_base_ = [
    'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py', './_base_/reviewkd_fpn.py'
]
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    _base_.reviewkd,
    _delete_=True,
    student=_base_.model,
    teacher=dict(
        config='mmdet::retinanet/retinanet_r101_fpn_1x_coco.py',
        checkpoint='checkpoints/retinanet_r101_fpn_1x_coco.pth'),
    losses=dict(
        loss_hcl=dict(_base_.reviewkd.losses.loss_hcl, loss_weight=1.0)))
