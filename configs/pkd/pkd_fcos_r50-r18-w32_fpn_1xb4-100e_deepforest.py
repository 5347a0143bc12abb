# PKD on the DeepForest tiles, FCOS R-50 -> R-18 (half width): the student,
# teacher and schedule of the detection protocol (configs/reviewkd/README.md)
# with the weight of pkd_fcos-x101_retinanet-r50_fpn_1x_coco.py (10)
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
        loss_pkd=dict(
            type='PKDLoss',
            loss_weight=10.0,
            inputs=dict(preds_S=s_fpn, preds_T=t_fpn))),
    probe_input_shape=(3, 192, 192))
