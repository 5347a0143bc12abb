# MGD on the DeepForest tiles, FCOS R-50 -> R-18 (half width): the pair and
# schedule of the detection protocol (configs/reviewkd/README.md) with the
# settings of mgd_retinanet_x101-r50_fpn_2x_coco.py (every FPN level, lambda
# 0.65, alpha 2e-5, clipping at 35); the student's head starts from the
# teacher's (the necks differ); not tuned here.
_base_ = ['../_base_/pairs/fcos_r50-r18-w32_deepforest.py']
model = dict(
    student=dict(bbox_head=dict(init_cfg=dict(
        type='Pretrained', checkpoint=_base_.teacher_ckpt,
        prefix='bbox_head.'))),
    taps=dict(_delete_=True, s_fpn='student.neck', t_fpn='teacher.neck'),
    connectors=dict(
        mgd=dict(type='MGDConnector', mask_ratio=0.65, inputs='s_fpn',
                 targets='t_fpn')),
    losses=dict(loss_mgd=dict(type='MGDLoss', alpha=2e-5,
                              inputs=dict(preds_S='mgd', preds_T='t_fpn'))))
optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
