# MGD on the DeepForest tiles, FCOS R-50 -> R-18 (half width): the student,
# teacher and schedule of the detection protocol (configs/reviewkd/README.md)
# with the settings of mgd_retinanet_x101-r50_fpn_2x_coco.py (every FPN level,
# lambda 0.65, alpha 2e-5, clipping at 35); the student's head starts from the
# teacher's (init_student; the necks' input widths differ); not tuned here.
_base_ = [
    '../../experiments/reviewkd/fcos_r18-w32_fpn_1xb4-100e_deepforest.py'
]
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
teacher_ckpt = 'work_dirs/detection_protocol/teacher/seed0/epoch_200.pth'
model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='Distiller',
    student=dict(
        _base_.model,
        bbox_head=dict(_base_.model.bbox_head, init_cfg=dict(
            type='Pretrained', prefix='bbox_head.', checkpoint=teacher_ckpt))),
    teacher=dict(
        config='{{fileDirname}}/../../experiments/reviewkd/'
        'fcos_r50-w32_fpn_1xb4-200e_deepforest.py',
        checkpoint=teacher_ckpt),
    taps=dict(s_fpn='student.neck', t_fpn='teacher.neck'),
    connectors=dict(
        mgd=dict(type='MGDConnector', mask_ratio=0.65, inputs='s_fpn',
                 targets='t_fpn')),
    losses=dict(loss_mgd=dict(type='MGDLoss', alpha=2e-5,
                              inputs=dict(preds_S='mgd', preds_T='t_fpn'))),
    probe_input_shape=(3, 192, 192))
optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
