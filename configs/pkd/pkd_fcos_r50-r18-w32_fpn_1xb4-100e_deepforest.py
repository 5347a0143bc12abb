# PKD on the DeepForest tiles, FCOS R-50 -> R-18 (half width): the pair and
# schedule of the detection protocol (configs/reviewkd/README.md) with the
# weight of pkd_fcos-x101_retinanet-r50_fpn_1x_coco.py (10) on the three FPN
# levels the head uses (p3-p5); not tuned here.
_base_ = ['../_base_/pairs/fcos_r50-r18-w32_deepforest.py']
model = dict(
    losses=dict(
        loss_pkd=dict(
            type='PKDLoss',
            loss_weight=10.0,
            inputs=dict(preds_S=['s0', 's1', 's2'],
                        preds_T=['t0', 't1', 't2']))))
