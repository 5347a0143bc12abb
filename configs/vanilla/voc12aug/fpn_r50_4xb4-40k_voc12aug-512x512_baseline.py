# CE-only twin of ../../frskd/fpn_r50_4xb4-40k_voc12aug-512x512.py: mmseg's
# Semantic FPN (ResNet-50-V1c + FPN + FPNHead) on Pascal VOC 2012 + SBD aug,
# 512x512 crops, 40k iterations of 4 GPUs x 4 images, mmseg's schedule (SGD lr
# 0.01, momentum 0.9, wd 5e-4, poly). Two settings of FRSKD's segmentation code
# are applied to both twins: the CE averages over non-ignored pixels (their
# nn.CrossEntropyLoss(ignore_index=255)) and gradients are clipped by value at
# 2.0 (their clip_grad_value_).
_base_ = [
    'mmseg::_base_/models/fpn_r50.py',
    'mmseg::_base_/datasets/pascal_voc12_aug.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_40k.py',
]
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    decode_head=dict(num_classes=21, loss_decode=dict(avg_non_ignore=True)))
optim_wrapper = dict(
    clip_grad=dict(_delete_=True, type='value', clip_value=2.0))
