# SKD, all three terms, on the nuclei tiles. The 64x64 crops give 8x8
# logits, so the critic has one stride-2 block (8 -> 4) before its final 4x4
# conv, with self-attention after it (the authors' 4 blocks need logits of
# at least 64x64).
_base_ = ['./skd-pi-pa_pspnet_r34-r18-d8_1xb8-450iter_stardist-64x64.py']
model = dict(
    type='AdversarialDistiller',
    critic=dict(
        type='SKDDiscriminator',
        input_mode='logits_bn',
        num_blocks=1,
        attention_after=(1, )),
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
    critic=[dict(type='PolyLR', eta_min=0., power=0.9, by_epoch=False)])
model_wrapper_cfg = dict(type='MMSeparateDistributedDataParallel')
