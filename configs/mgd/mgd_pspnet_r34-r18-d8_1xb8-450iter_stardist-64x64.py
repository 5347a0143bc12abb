# MGD on the nuclei tiles: PSPNet-R34 -> PSPNet-R18, the SKD nuclei
# experiment's student, teacher and schedule (the nuclei protocol,
# configs/skd/README.md). The authors' segmentation settings, not tuned
# here: the backbones' last stage (512 channels on both sides: no align
# conv), spatial mask lambda 0.75, alpha 2e-5, plus their logit term (CWD,
# T = 4, weight 3).
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
        s4=dict(path='student.backbone', index=-1),
        t4=dict(path='teacher.backbone', index=-1),
        s_logits='student.decode_head.conv_seg',
        t_logits='teacher.decode_head.conv_seg'),
    connectors=dict(
        mgd=dict(type='MGDConnector', mask_ratio=0.75, inputs='s4',
                 targets='t4')),
    losses=dict(
        loss_mgd=dict(type='MGDLoss', alpha=2e-5,
                      inputs=dict(preds_S='mgd', preds_T='t4')),
        loss_cwd=dict(type='CWDLoss', tau=4.0, loss_weight=3.0,
                      inputs=dict(preds_S='s_logits', preds_T='t_logits'))))
