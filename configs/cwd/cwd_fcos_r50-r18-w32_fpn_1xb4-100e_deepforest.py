# CWD on the DeepForest tiles, FCOS R-50 -> R-18 (half width): the student,
# teacher and schedule of the detection protocol (configs/reviewkd/README.md)
# with the settings of cwd_retinanet_x101-r50_fpn_2x_coco.py (T 1, weight 5)
# on the three FPN levels the head uses (p3-p5); not tuned here.
_base_ = [
    '../../experiments/reviewkd/fcos_r18-w32_fpn_1xb4-100e_deepforest.py'
]
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
teacher_ckpt = 'work_dirs/detection_protocol/teacher/seed0/epoch_200.pth'
s_fpn, t_fpn = ['s0', 's1', 's2'], ['t0', 't1', 't2']
model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='Distiller',
    student=_base_.model,
    teacher=dict(
        config='{{fileDirname}}/../../experiments/reviewkd/'
        'fcos_r50-w32_fpn_1xb4-200e_deepforest.py',
        checkpoint=teacher_ckpt),
    taps={
        f'{m[0]}{i}': dict(path=f'{m}.neck', index=i)
        for m in ('student', 'teacher') for i in range(3)
    },
    losses=dict(
        loss_cwd=dict(
            type='CWDLoss',
            tau=1.0,
            loss_weight=5.0,
            inputs=dict(preds_S=s_fpn, preds_T=t_fpn))),
    probe_input_shape=(3, 192, 192))
