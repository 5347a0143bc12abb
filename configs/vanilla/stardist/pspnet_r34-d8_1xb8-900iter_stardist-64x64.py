# Teacher of the SKD nuclei experiment: PSPNet-R34 (ResNetV1c, output
# stride 8, a 256-channel PSP head), trained from scratch here, twice as
# long as the students (no pretrained teacher exists for this data).
_base_ = ['./pspnet_r18-d8_1xb8-450iter_stardist-64x64.py']
model = dict(
    backbone=dict(depth=34),
    decode_head=dict(channels=256),
    auxiliary_head=dict(channels=128))
train_cfg = dict(max_iters=900, val_interval=900)
default_hooks = dict(checkpoint=dict(interval=900))
