# The pair of the detection protocol (configs/reviewkd/README.md): FCOS
# R-18/2 student and FCOS R-50/2 teacher on the DeepForest tiles, the
# student's recipe (100 epochs), taps s0-s2 / t0-t2 on the three FPN levels
# the head uses (p3-p5). A method's config adds its losses.
_base_ = ['../../vanilla/deepforest/fcos_r18-w32_fpn_1xb4-100e_deepforest.py']
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
# trained by tools/experiments/detection_protocol.sh
teacher_ckpt = 'work_dirs/detection_protocol/teacher/seed0/epoch_200.pth'
model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='Distiller',
    student=_base_.model,
    teacher=dict(
        config='{{fileDirname}}/../../vanilla/deepforest/'
        'fcos_r50-w32_fpn_1xb4-200e_deepforest.py',
        checkpoint=teacher_ckpt),
    taps={
        f'{m[0]}{i}': dict(path=f'{m}.neck', index=i)
        for m in ('student', 'teacher') for i in range(3)
    },
    probe_input_shape=(3, 192, 192))
