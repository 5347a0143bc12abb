# PKD (Cao et al., NeurIPS 2022) from an FCOS X-101-64x4d teacher to a
# RetinaNet R-50 student on COCO (different detectors, the same FPN), as the
# authors' MMRazor config (pkd_fpn_fcos_x101_retina_r50_1x_coco.py):
# Pearson-correlation imitation, weight 10, on the FPN levels 0-3 (P3-P6),
# summed (docs/en/methods.md#pkd), over mmdet's own 1x student config.
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py']
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='Distiller',
    student=_base_.model,
    teacher=dict(
        config='mmdet::fcos/fcos_x101-64x4d_fpn_gn-head_ms-640-800-2x_coco.py',
        checkpoint='checkpoints/fcos_x101-64x4d_fpn_gn-head_ms-2x_coco.pth'),
    # s0..s3 / t0..t3: the first four outputs of each detector's neck
    taps={
        f'{p}{i}': dict(path=f'{m}.neck', index=i)
        for p, m in (('s', 'student'), ('t', 'teacher'))
        for i in range(4)
    },
    losses=dict(
        loss_pkd=dict(
            type='PKDLoss',
            loss_weight=10.0,
            inputs=dict(
                preds_S=['s0', 's1', 's2', 's3'],
                preds_T=['t0', 't1', 't2', 't3']))))
