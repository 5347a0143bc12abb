# SKD, all three terms (pixel-wise + pair-wise + holistic): the adversarial
# distiller adds a WGAN-GP critic on the 1/8 logits, trained by its own
# optimizer right after every student step (authors' update order).
_base_ = ['./skd-pi-pa_pspnet_r101-r18-d8_4xb2-80k_cityscapes-512x1024.py']

model = dict(
    type='AdversarialDistiller',
    # master code: raw logits -> BN -> SAGAN critic (in_channels inferred);
    # input_mode='image_softmax' is the CVPR'19 conditional critic.
    critic=dict(type='SKDDiscriminator', input_mode='logits_bn'),
    critic_inputs=dict(preds_S='s_logits', preds_T='t_logits'),
    generator_loss=dict(type='HolisticGeneratorLoss', loss_weight=0.1),
    critic_loss=dict(
        type='HolisticCriticLoss', lambda_gp=10.0, loss_weight=0.1))

optim_wrapper = dict(
    _delete_=True,
    constructor='mmkd.DistillerOptimWrapperConstructor',
    student=_base_.optim_wrapper,  # mmseg's SGD 0.01, momentum 0.9, wd 5e-4
    critic=dict(
        type='OptimWrapper',
        optimizer=dict(type='SGD', lr=4e-4, momentum=0.9, weight_decay=5e-4)))
param_scheduler = dict(
    _delete_=True,
    student=_base_.param_scheduler,  # mmseg's poly 0.9
    critic=[
        dict(
            type='PolyLR',
            eta_min=0.,
            power=0.9,
            begin=0,
            end=80000,
            by_epoch=False)
    ])
# MMEngine's default DDP wrapper runs its own train step (no critic step).
model_wrapper_cfg = dict(type='MMSeparateDistributedDataParallel')
