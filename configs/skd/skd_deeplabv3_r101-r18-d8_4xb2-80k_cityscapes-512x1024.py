# SKD, all three terms, DeepLabV3-R101 -> DeepLabV3-R18 on Cityscapes, over
# mmseg's own student config. Same taps as PSPNet: mmseg's ASPPHead also ends
# with `bottleneck` -> dropout -> `conv_seg`, so the pair-wise term compares
# the ASPP bottleneck outputs (the input of `conv_seg`).
_base_ = ['mmseg::deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py']
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='AdversarialDistiller',
    student=_base_.model,
    teacher=dict(
        config='mmseg::deeplabv3/'
        'deeplabv3_r101-d8_4xb2-80k_cityscapes-512x1024.py',
        checkpoint='checkpoints/deeplabv3_r101-d8_4xb2-80k_cityscapes.pth'),
    taps=dict(
        s_logits='student.decode_head.conv_seg',
        t_logits='teacher.decode_head.conv_seg',
        s_feat=dict(path='student.decode_head.conv_seg', io='input'),
        t_feat=dict(path='teacher.decode_head.conv_seg', io='input')),
    losses=dict(
        loss_pi=dict(
            type='PixelWiseLoss',
            tau=1.0,
            loss_weight=10.0,
            inputs=dict(preds_S='s_logits', preds_T='t_logits')),
        loss_pa=dict(
            type='PairWiseLoss',
            pool='max',
            scale=0.5,
            loss_weight=0.5,
            inputs=dict(preds_S='s_feat', preds_T='t_feat'))),
    critic=dict(type='SKDDiscriminator', input_mode='logits_bn'),
    critic_inputs=dict(preds_S='s_logits', preds_T='t_logits'),
    generator_loss=dict(type='HolisticGeneratorLoss', loss_weight=0.1),
    critic_loss=dict(
        type='HolisticCriticLoss', lambda_gp=10.0, loss_weight=0.1))

optim_wrapper = dict(
    _delete_=True,
    constructor='mmkd.DistillerOptimWrapperConstructor',
    student=_base_.optim_wrapper,
    critic=dict(
        type='OptimWrapper',
        optimizer=dict(type='SGD', lr=4e-4, momentum=0.9, weight_decay=5e-4)))
param_scheduler = dict(
    _delete_=True,
    student=_base_.param_scheduler,
    critic=[
        dict(
            type='PolyLR',
            eta_min=0.,
            power=0.9,
            begin=0,
            end=80000,
            by_epoch=False)
    ])
model_wrapper_cfg = dict(type='MMSeparateDistributedDataParallel')
