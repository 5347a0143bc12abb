# Student baseline of the DeepForest ReviewKD experiment: the teacher's
# recipe (RetinaNet, from scratch, FPN/head 128, 400 px, 12 epochs) with a
# ResNet-18 backbone.
_base_ = ['./retinanet_r50-fpn128_1xb2-12e_deepforest.py']

model = dict(
    backbone=dict(depth=18), neck=dict(in_channels=[64, 128, 256, 512]))
