# FGD on the DeepForest tiles, FCOS R-50 -> R-18 (half width): the pair and
# schedule of the detection protocol (configs/reviewkd/README.md) with the
# settings of fgd_retinanet_r101-r50_fpn_2x_coco.py on p3-p5; the student's
# head starts from the teacher's (the necks differ); not tuned here.
_base_ = ['../_base_/pairs/fcos_r50-r18-w32_deepforest.py']
s_fpn, t_fpn = ['s0', 's1', 's2'], ['t0', 't1', 't2']
model = dict(
    student=dict(bbox_head=dict(init_cfg=dict(
        type='Pretrained', checkpoint=_base_.teacher_ckpt,
        prefix='bbox_head.'))),
    taps={f'{m[0]}{i}': dict(_delete_=True,
                             path=f'{m}.neck.fpn_convs.{i}.conv')
          for m in ('student', 'teacher') for i in range(3)},
    connectors=dict(
        fgd_s=dict(type='FGDConnector', inputs=s_fpn, targets=t_fpn),
        fgd_t=dict(type='FGDConnector', inputs=t_fpn)),
    losses=dict(loss_fgd=dict(
        type='FGDLoss', temp=0.5, alpha_fgd=0.001, beta_fgd=0.0005,
        gamma_fgd=0.0005, lambda_fgd=0.000005,
        inputs=dict(preds_S='fgd_s.feats', preds_T=t_fpn,
                    rela_S='fgd_s.relation', rela_T='fgd_t.relation',
                    gt_instances='gt_instances', img_metas='img_metas'))))
optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
