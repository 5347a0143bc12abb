# CIRKD on the nuclei tiles (PSPNet-R34 -> PSPNet-R18, the SKD nuclei
# experiment's baseline, teacher and schedule; not run here). The terms and
# weights are the authors' (./_base_/cirkd_seg.py); the memory is sized for
# the data: 2 classes, 8 crops of 64x64 per step, i.e. 8x8 embeddings, so a
# class gets at most 8 regions and 8 x 16 pixels per step. The queues keep
# about the authors' history in steps (20000 / (16 x 16) = 78 pixel steps,
# 2000 / 16 = 125 region steps): 10000 pixels and 1000 regions per class;
# contrast sets as the authors' script, 4096 // 2 + 1 and 1024 // 2 + 1.
_base_ = [
    '../vanilla/stardist/pspnet_r18-d8_1xb8-450iter_stardist-64x64.py',
    './_base_/cirkd_seg.py'
]
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    _base_.cirkd,
    _delete_=True,
    student=_base_.model,
    teacher=dict(
        config='{{fileDirname}}/../vanilla/stardist/'
        'pspnet_r34-d8_1xb8-900iter_stardist-64x64.py',
        # trained by tools/experiments/skd_nuclei.sh
        checkpoint='work_dirs/skd_nuclei/teacher/iter_900.pth'),
    connectors=dict(
        cirkd_memory=dict(
            _base_.cirkd.connectors.cirkd_memory,
            num_classes=2,
            pixel_memory_size=10000,
            region_memory_size=1000,
            pixel_contrast_size=2049,
            region_contrast_size=513,
            norm_cfg=dict(type='BN'))))
