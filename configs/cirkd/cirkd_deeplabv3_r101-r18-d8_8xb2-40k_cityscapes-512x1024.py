# CIRKD, DeepLabV3-R101 -> DeepLabV3-R18 on Cityscapes (the authors'
# train_scripts/train_cirkd/citys/deeplabv3_res18.sh). The terms are in
# ./_base_/cirkd_seg.py; the authors' schedule: 8 GPUs x 2 crops of
# 512x1024, 40k iterations, SGD lr 0.02, momentum 0.9, wd 1e-4, poly 0.9 to 0.
_base_ = [
    'mmseg::deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py',
    './_base_/cirkd_seg.py'
]
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    _base_.cirkd,
    _delete_=True,
    student=_base_.model,
    teacher=dict(
        config='mmseg::deeplabv3/'
        'deeplabv3_r101-d8_4xb2-80k_cityscapes-512x1024.py',
        checkpoint='checkpoints/deeplabv3_r101-d8_4xb2-80k_cityscapes.pth'))

optim_wrapper = dict(optimizer=dict(lr=0.02, weight_decay=1e-4))
param_scheduler = [dict(type='PolyLR', eta_min=0., power=0.9, by_epoch=False)
                   ]  # no `end`: MMEngine ends it at train_cfg.max_iters
train_cfg = dict(max_iters=40000)
