# MGD RetinaNet RX-101-64x4d -> R-50 2x as the authors' det/configs/distillers/
# mgd/retina_rx101_64x4d_distill_retina_r50_fpn_2x_coco.py (methods.md#mgd): 5
# FPN levels (their taps neck.fpn_convs.0-4.conv are the neck's outputs), one
# generation block each, spatial mask lambda 0.65, alpha 2e-5, neck and head
# initialised from the teacher (init_student=True), gradient clip at norm 35.
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_2x_coco.py']
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
teacher_ckpt = 'checkpoints/retinanet_x101_64x4d_fpn_mstrain_3x_coco.pth'

model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='Distiller',
    student=dict(
        _base_.model,
        neck=dict(_base_.model.neck, init_cfg=dict(
            type='Pretrained', prefix='neck.', checkpoint=teacher_ckpt)),
        bbox_head=dict(_base_.model.bbox_head, init_cfg=dict(
            type='Pretrained', prefix='bbox_head.', checkpoint=teacher_ckpt))),
    teacher=dict(
        config='mmdet::retinanet/'
        'retinanet_x101-64x4d_fpn_ms-640-800-3x_coco.py',
        checkpoint=teacher_ckpt),
    taps=dict(s_fpn='student.neck', t_fpn='teacher.neck'),
    connectors=dict(
        mgd=dict(type='MGDConnector', mask_ratio=0.65, inputs='s_fpn',
                 targets='t_fpn')),
    losses=dict(loss_mgd=dict(type='MGDLoss', alpha=2e-5,
                              inputs=dict(preds_S='mgd', preds_T='t_fpn'))))
optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
