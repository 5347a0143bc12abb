# CWD on the nuclei tiles: PSPNet-R34 -> PSPNet-R18, the SKD nuclei
# experiment's student, teacher and schedule (the nuclei protocol,
# configs/skd/README.md). Channel-wise KL on the 1/8-resolution logits with
# the authors' segmentation settings (T = 4, weight 3), not tuned here.
_base_ = ['../../experiments/skd/pspnet_r18-d8_1xb8-450iter_stardist-64x64.py']
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='Distiller',
    student=_base_.model,
    teacher=dict(
        config='{{fileDirname}}/../../experiments/skd/'
        'pspnet_r34-d8_1xb8-900iter_stardist-64x64.py',
        # trained by tools/experiments/nuclei_protocol.sh
        checkpoint='work_dirs/nuclei_protocol/teacher/seed0/iter_900.pth'),
    taps=dict(
        s_logits='student.decode_head.conv_seg',
        t_logits='teacher.decode_head.conv_seg'),
    losses=dict(
        loss_cwd=dict(
            type='CWDLoss',
            tau=4.0,
            loss_weight=3.0,
            inputs=dict(preds_S='s_logits', preds_T='t_logits'))))
