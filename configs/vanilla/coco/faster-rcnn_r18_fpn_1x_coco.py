# Faster R-CNN R18-FPN, 1x on COCO (mmdet has no R18 Faster R-CNN config):
# mmdet's R50 config with a ResNet-18 backbone (ImageNet-pretrained from
# torchvision, as mmdet's R18 RetinaNet) and the FPN fed with its 64-512
# channels; schedule unchanged (8 x 2 images, lr 0.02).
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        depth=18,
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet18')),
    neck=dict(in_channels=[64, 128, 256, 512]))
