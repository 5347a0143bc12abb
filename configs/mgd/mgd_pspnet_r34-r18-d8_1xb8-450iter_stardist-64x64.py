# MGD on the nuclei tiles, PSPNet-R34 -> PSPNet-R18: the pair and schedule of
# the nuclei protocol (configs/skd/README.md). The authors' segmentation
# settings, not tuned here: the backbones' last stage (512 channels on both
# sides: no align conv), spatial mask lambda 0.75, alpha 2e-5, plus their
# logit term (CWD, T = 4, weight 3).
_base_ = ['../_base_/pairs/pspnet_r34-r18-d8_stardist-64x64.py']
model = dict(
    taps=dict(
        s4=dict(path='student.backbone', index=-1),
        t4=dict(path='teacher.backbone', index=-1)),
    connectors=dict(
        mgd=dict(type='MGDConnector', mask_ratio=0.75, inputs='s4',
                 targets='t4')),
    losses=dict(
        loss_mgd=dict(type='MGDLoss', alpha=2e-5,
                      inputs=dict(preds_S='mgd', preds_T='t4')),
        loss_cwd=dict(type='CWDLoss', tau=4.0, loss_weight=3.0,
                      inputs=dict(preds_S='s_logits', preds_T='t_logits'))))
