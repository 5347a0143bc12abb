# ReviewKD RetinaNet R-50 -> R-18 on DeepForest, the student baseline's
# recipe: review path over the five FPN levels the heads use (p3..p7; mid
# channels = the 128 FPN channels, as the official code uses the FPN width)
# and HCL against the teacher's FPN outputs, weight 1.0 (the official
# RetinaNet setting), no warm-up. The teacher runs backbone + neck only.
_base_ = [
    './retinanet_r18-fpn128_1xb2-12e_deepforest.py',
    '../_base_/reviewkd_fpn.py'
]

model = dict(
    _base_.reviewkd,
    _delete_=True,
    student=_base_.model,
    teacher=dict(
        config='{{fileDirname}}/retinanet_r50-fpn128_1xb2-12e_deepforest.py',
        # tools/experiments/reviewkd_deepforest.sh sets the one it trains
        checkpoint='checkpoints/reviewkd/retinanet_r50_deepforest.pth'),
    connectors=dict(
        review=dict(_base_.reviewkd.connectors.review, mid_channels=128)),
    losses=dict(
        loss_hcl=dict(_base_.reviewkd.losses.loss_hcl, loss_weight=1.0)))
