# SKD "+ pixel-wise + pair-wise" on the nuclei tiles (PSP module outputs:
# 128 student channels, 256 teacher channels, 2x2 max-pooled nodes).
_base_ = ['./skd-pi_pspnet_r34-r18-d8_1xb8-450iter_stardist-64x64.py']
model = dict(
    taps=dict(
        s_feat=dict(path='student.decode_head.conv_seg', io='input'),
        t_feat=dict(path='teacher.decode_head.conv_seg', io='input')),
    losses=dict(
        loss_pa=dict(
            type='PairWiseLoss',
            loss_weight=0.5,
            inputs=dict(preds_S='s_feat', preds_T='t_feat'))))
