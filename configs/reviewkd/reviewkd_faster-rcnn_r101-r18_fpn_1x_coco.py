# ReviewKD on the FPN of Faster R-CNN R101 -> R18 (official weight 1.2, no
# warm-up); the student is mmdet's R50 config with depth 18
# (configs/vanilla/coco/faster-rcnn_r18_fpn_1x_coco.py). Review path over
# p2..p6, HCL against the teacher's FPN outputs; the teacher runs backbone +
# neck only.
_base_ = [
    '../vanilla/coco/faster-rcnn_r18_fpn_1x_coco.py',
    './_base_/reviewkd_fpn.py'
]
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    _base_.reviewkd,
    _delete_=True,
    student=_base_.model,
    teacher=dict(
        config='mmdet::faster_rcnn/faster-rcnn_r101_fpn_1x_coco.py',
        checkpoint='checkpoints/faster-rcnn_r101_fpn_1x_coco.pth'),
    losses=dict(
        loss_hcl=dict(_base_.reviewkd.losses.loss_hcl, loss_weight=1.2)))
