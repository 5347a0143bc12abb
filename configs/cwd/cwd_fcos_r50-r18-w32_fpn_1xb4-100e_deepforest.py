# CWD on the DeepForest tiles, FCOS R-50 -> R-18 (half width): the pair and
# schedule of the detection protocol (configs/reviewkd/README.md) with the
# settings of cwd_retinanet_x101-r50_fpn_2x_coco.py (T 1, weight 5) on the
# three FPN levels the head uses (p3-p5); not tuned here.
_base_ = ['../_base_/pairs/fcos_r50-r18-w32_deepforest.py']
model = dict(
    losses=dict(
        loss_cwd=dict(
            type='CWDLoss',
            tau=1.0,
            loss_weight=5.0,
            inputs=dict(preds_S=['s0', 's1', 's2'],
                        preds_T=['t0', 't1', 't2']))))
