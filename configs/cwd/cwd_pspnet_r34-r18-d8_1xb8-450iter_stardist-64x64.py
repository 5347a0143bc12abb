# CWD on the nuclei tiles, PSPNet-R34 -> PSPNet-R18: the pair and schedule of
# the nuclei protocol (configs/skd/README.md). Channel-wise KL on the
# 1/8-resolution logits with the authors' segmentation settings (T = 4,
# weight 3), not tuned here.
_base_ = ['../_base_/pairs/pspnet_r34-r18-d8_stardist-64x64.py']
model = dict(
    losses=dict(
        loss_cwd=dict(
            type='CWDLoss',
            tau=4.0,
            loss_weight=3.0,
            inputs=dict(preds_S='s_logits', preds_T='t_logits'))))
