# What the CIRKD configs share (winycg/CIRKD train_cirkd.py and
# losses/cirkd_*.py; docs/en/methods.md#cirkd): the embeddings are the inputs
# of the decode heads' conv_seg (the head's features after its dropout, the
# authors' `x_feat_after_aspp`), at output stride 8; the logits are conv_seg's
# outputs, not upsampled. Loss: the student's own (CE + 0.4 aux) + logit KD
# (T=1, mean over pixels) + mini-batch pixel-to-pixel (tau=0.1, weight 1) +
# memory pixel-to-pixel and pixel-to-region (tau=0.1, KL at T=1, weights
# 0.1 / 0.1), with per-class queues of 20000 pixel and 2000 region teacher
# embeddings and contrast sets of 4096 // 19 + 1 = 216 pixels and
# 1024 // 19 + 1 = 54 regions per class (Cityscapes' 19 classes). A config
# builds its model as
#   dict(_base_.cirkd, _delete_=True, student=..., teacher=...).
cirkd = dict(
    _scope_='mmkd',
    type='Distiller',
    taps=dict(
        s_logits='student.decode_head.conv_seg',
        t_logits='teacher.decode_head.conv_seg',
        s_feat=dict(path='student.decode_head.conv_seg', io='input'),
        t_feat=dict(path='teacher.decode_head.conv_seg', io='input')),
    connectors=dict(
        cirkd_memory=dict(
            type='CIRKDMemory',
            num_classes=19,
            pixel_memory_size=20000,
            region_memory_size=2000,
            pixel_contrast_size=216,
            region_contrast_size=54,
            pixel_update_freq=16,
            ignore_index=255,
            norm_cfg=dict(type='SyncBN'),
            inputs='s_feat',
            targets='t_feat')),
    losses=dict(
        loss_kd=dict(
            type='PixelWiseLoss',
            tau=1.0,
            batch_reduction='mean',
            inputs=dict(preds_S='s_logits', preds_T='t_logits')),
        loss_minibatch=dict(
            type='CIRKDMiniBatchLoss',
            tau=0.1,
            inputs=dict(preds_S='s_feat', preds_T='t_feat')),
        loss_memory=dict(
            type='CIRKDMemoryLoss',
            pixel_weight=0.1,
            region_weight=0.1,
            contrast_temperature=0.1,
            kd_temperature=1.0,
            inputs=dict(
                preds_S='cirkd_memory.embed',
                preds_T='t_feat',
                memory='cirkd_memory.memory',
                gt='gt_sem_seg'))))
