# FGD (Yang et al., CVPR 2022) Faster R-CNN R-101 -> R-50 on COCO, 2x, as the
# authors' fgd_faster_rcnn_r101_fpn_2x_distill_faster_rcnn_r50_fpn_2x_coco.py:
# FGD on the 4 FPN convs (neck.fpn_convs.0-3.conv; not the max-pooled 5th
# level), temp 0.5, alpha 5e-5, beta 2.5e-5, gamma 5e-5, lambda 5e-7; the
# student's neck and heads start from the teacher's weights; gradient norm
# clipped at 35 (docs/en/methods.md#fgd).
_base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_2x_coco.py']
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
teacher_ckpt = 'checkpoints/faster-rcnn_r101_fpn_2x_coco.pth'
s_fpn = [f's{i}' for i in range(4)]
t_fpn = [f't{i}' for i in range(4)]
model = dict(
    _delete_=True, _scope_='mmkd', type='Distiller',
    student=dict(_base_.model, **{k: dict(_base_.model[k], init_cfg=dict(
        type='Pretrained', checkpoint=teacher_ckpt, prefix=k + '.'))
        for k in ('neck', 'rpn_head', 'roi_head')}),
    teacher=dict(config='mmdet::faster_rcnn/faster-rcnn_r101_fpn_2x_coco.py',
                 checkpoint=teacher_ckpt),
    taps={f'{m[0]}{i}': f'{m}.neck.fpn_convs.{i}.conv'
          for m in ('student', 'teacher') for i in range(4)},
    connectors=dict(
        fgd_s=dict(type='FGDConnector', inputs=s_fpn, targets=t_fpn),
        fgd_t=dict(type='FGDConnector', inputs=t_fpn)),
    losses=dict(loss_fgd=dict(
        type='FGDLoss', temp=0.5, alpha_fgd=0.00005, beta_fgd=0.000025,
        gamma_fgd=0.00005, lambda_fgd=0.0000005,
        inputs=dict(preds_S='fgd_s.feats', preds_T=t_fpn,
                    rela_S='fgd_s.relation', rela_T='fgd_t.relation',
                    gt_instances='gt_instances', img_metas='img_metas'))))
optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
