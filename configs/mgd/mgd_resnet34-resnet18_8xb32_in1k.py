# MGD (Yang et al., ECCV 2022) ResNet-34 -> ResNet-18 on ImageNet, as the
# authors' cls/configs/distillers/mgd/res34_distill_res18_img.py: the last
# backbone stage (512 channels on both sides, so no align conv), a random
# *channel* mask (lambda = 0.15) and alpha = 7e-5, over mmpretrain's own
# ResNet-18 config (data, 100-epoch schedule, evaluator unchanged).
# Equations: docs/en/methods.md#mgd.
_base_ = ['mmpretrain::resnet/resnet18_8xb32_in1k.py']
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='Distiller',
    student=_base_.model,
    teacher=dict(
        config='mmpretrain::resnet/resnet34_8xb32_in1k.py',
        checkpoint='checkpoints/resnet34_8xb32_in1k_20210831-f257d4e6.pth'),
    taps=dict(s4='student.backbone.layer4', t4='teacher.backbone.layer4'),
    connectors=dict(
        mgd=dict(
            type='MGDConnector',
            mask_ratio=0.15,
            mask_type='channel',
            inputs='s4',
            targets='t4')),
    losses=dict(
        loss_mgd=dict(
            type='MGDLoss', alpha=7e-5,
            inputs=dict(preds_S='mgd', preds_T='t4'))))
