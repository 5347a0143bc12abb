# ReviewKD on the FPN of Mask R-CNN R101 -> R50 (official weight 0.8, no
# warm-up), on mmdet's own 1x config: review path over p2..p6, HCL against
# the teacher's FPN outputs; the teacher runs backbone + neck only.
_base_ = [
    'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', './_base_/reviewkd_fpn.py'
]
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    _base_.reviewkd,
    _delete_=True,
    student=_base_.model,
    teacher=dict(
        config='mmdet::mask_rcnn/mask-rcnn_r101_fpn_1x_coco.py',
        checkpoint='checkpoints/mask-rcnn_r101_fpn_1x_coco.pth'),
    losses=dict(
        loss_hcl=dict(_base_.reviewkd.losses.loss_hcl, loss_weight=0.8)))
