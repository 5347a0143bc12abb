# SKD "+ pixel-wise" on the nuclei tiles: PSPNet-R34 -> PSPNet-R18.
_base_ = ['../vanilla/stardist/pspnet_r18-d8_1xb8-450iter_stardist-64x64.py']
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='Distiller',
    student=_base_.model,
    teacher=dict(
        config='{{fileDirname}}/../vanilla/stardist/'
        'pspnet_r34-d8_1xb8-900iter_stardist-64x64.py',
        # trained by tools/experiments/skd_nuclei.sh
        checkpoint='work_dirs/skd_nuclei/teacher/iter_900.pth'),
    taps=dict(
        s_logits='student.decode_head.conv_seg',
        t_logits='teacher.decode_head.conv_seg'),
    losses=dict(
        loss_pi=dict(
            type='PixelWiseLoss',
            loss_weight=10.0,
            inputs=dict(preds_S='s_logits', preds_T='t_logits'))))
