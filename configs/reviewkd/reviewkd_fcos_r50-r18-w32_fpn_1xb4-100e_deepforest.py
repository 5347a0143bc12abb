# ReviewKD FCOS R-50 -> R-18 (half width) on DeepForest, the student
# baseline's recipe: review path over the three FPN levels the head uses
# (p3-p5; mid channels = the 128 FPN channels, as the official code uses the
# FPN width) and HCL against the teacher's FPN outputs, weight 1.0 (the
# official one-stage setting, RetinaNet R101 -> R50), no warm-up. The
# teacher runs backbone + neck only.
_base_ = [
    '../vanilla/deepforest/fcos_r18-w32_fpn_1xb4-100e_deepforest.py',
    './_base_/reviewkd_fpn.py'
]

model = dict(
    _base_.reviewkd,
    _delete_=True,
    student=_base_.model,
    teacher=dict(
        config='{{fileDirname}}/../vanilla/deepforest/'
        'fcos_r50-w32_fpn_1xb4-200e_deepforest.py',
        # tools/experiments/reviewkd_deepforest.sh sets the one it trains
        checkpoint='checkpoints/reviewkd/fcos_r50-w32_deepforest.pth'),
    connectors=dict(
        review=dict(_base_.reviewkd.connectors.review, mid_channels=128)),
    losses=dict(
        loss_hcl=dict(_base_.reviewkd.losses.loss_hcl, loss_weight=1.0)),
    probe_input_shape=(3, 192, 192))
