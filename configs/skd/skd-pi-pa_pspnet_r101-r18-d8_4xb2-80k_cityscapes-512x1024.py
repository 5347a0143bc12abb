# SKD ablation row "+ pixel-wise + pair-wise". The pair-wise term compares
# the PSP module outputs (the authors' `x_feat_after_psp`: bottleneck conv,
# BN, activation, Dropout2d(0.1)), i.e. the input of mmseg's `conv_seg`
# (`decode_head.bottleneck` -> `cls_seg`'s dropout -> `conv_seg`).
_base_ = ['./skd-pi_pspnet_r101-r18-d8_4xb2-80k_cityscapes-512x1024.py']

model = dict(
    taps=dict(
        s_feat=dict(path='student.decode_head.conv_seg', io='input'),
        t_feat=dict(path='teacher.decode_head.conv_seg', io='input')),
    losses=dict(
        loss_pa=dict(
            type='PairWiseLoss',
            pool='max',
            scale=0.5,  # 2x2 nodes, max-pooled (released code)
            loss_weight=0.5,  # lambda_pa of the released run script
            inputs=dict(preds_S='s_feat', preds_T='t_feat'))))
