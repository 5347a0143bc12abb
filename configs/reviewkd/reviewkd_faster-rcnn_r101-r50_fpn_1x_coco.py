# ReviewKD on the FPN of Faster R-CNN R101 -> R50 (official weight 1.0, no
# warm-up), on mmdet's own 1x config: the review path (ABF, 256 mid channels)
# runs over the student's p2..p6 from p6 down, and HCL compares each level
# with the teacher's FPN output. The teacher runs its backbone and neck only.
_base_ = [
    'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
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
        loss_hcl=dict(_base_.reviewkd.losses.loss_hcl, loss_weight=1.0)))
