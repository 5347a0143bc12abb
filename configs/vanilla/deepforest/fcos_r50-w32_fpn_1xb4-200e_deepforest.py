# Teacher of the DeepForest ReviewKD experiment: the student's recipe with a
# half-width ResNet-50 (bottleneck, base 32 channels: stages of 128-1024
# channels), trained twice as long (200 epochs of the 45 tiles, 2,200
# iterations).
_base_ = ['./fcos_r18-w32_fpn_1xb4-100e_deepforest.py']

max_epochs = 200
model = dict(
    backbone=dict(depth=50), neck=dict(in_channels=[128, 256, 512, 1024]))
train_cfg = dict(max_epochs=max_epochs, val_interval=20)
param_scheduler = [
    _base_.param_scheduler[0],
    dict(_base_.param_scheduler[1], end=max_epochs, milestones=[150, 180])
]
default_hooks = dict(checkpoint=dict(interval=20))
