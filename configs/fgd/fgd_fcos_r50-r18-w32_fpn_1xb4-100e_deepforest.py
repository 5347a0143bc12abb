# FGD on DeepForest, FCOS R-50 -> R-18 (half width), the detection protocol
# (configs/reviewkd/README.md): fgd_retinanet_r101-r50_fpn_2x_coco.py's
# settings on p3-p5, the student's head from the teacher's; not tuned here.
_base_ = [
    '../../experiments/reviewkd/fcos_r18-w32_fpn_1xb4-100e_deepforest.py'
]
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
teacher_ckpt = 'work_dirs/detection_protocol/teacher/seed0/epoch_200.pth'
s_fpn, t_fpn = ['s0', 's1', 's2'], ['t0', 't1', 't2']
model = dict(
    _delete_=True, _scope_='mmkd', type='Distiller',
    student=dict(_base_.model, bbox_head=dict(
        _base_.model.bbox_head, init_cfg=dict(
            type='Pretrained', checkpoint=teacher_ckpt, prefix='bbox_head.'))),
    teacher=dict(config='{{fileDirname}}/../../experiments/reviewkd/'
                 'fcos_r50-w32_fpn_1xb4-200e_deepforest.py',
                 checkpoint=teacher_ckpt),
    taps={f'{m[0]}{i}': f'{m}.neck.fpn_convs.{i}.conv'
          for m in ('student', 'teacher') for i in range(3)},
    connectors=dict(
        fgd_s=dict(type='FGDConnector', inputs=s_fpn, targets=t_fpn),
        fgd_t=dict(type='FGDConnector', inputs=t_fpn)),
    losses=dict(loss_fgd=dict(
        type='FGDLoss', temp=0.5, alpha_fgd=0.001, beta_fgd=0.0005,
        gamma_fgd=0.0005, lambda_fgd=0.000005,
        inputs=dict(preds_S='fgd_s.feats', preds_T=t_fpn,
                    rela_S='fgd_s.relation', rela_T='fgd_t.relation',
                    gt_instances='gt_instances', img_metas='img_metas'))),
    probe_input_shape=(3, 192, 192))
optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
