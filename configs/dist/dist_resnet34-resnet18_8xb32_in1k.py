# DIST (Huang et al., NeurIPS 2022) ResNet-34 -> ResNet-18 on ImageNet, as
# the authors' code (hunto/image_classification_sota,
# configs/strategies/distill/resnet_dist.yaml: kd 'dist', kd_loss_weight 2):
# inter- and intra-class Pearson correlation of softmax(z / T), T = 1,
# beta = gamma = 1, the DIST term weighted 2 (docs/en/methods.md#dist).
# Student, data and schedule: mmpretrain's own ResNet-18 config (batch 8x32,
# SGD lr 0.1, wd 1e-4, x0.1 every 30 epochs, 100 epochs), as the authors'.
_base_ = ['mmpretrain::resnet/resnet18_8xb32_in1k.py']
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='Distiller',
    student=_base_.model,
    teacher=dict(
        config='mmpretrain::resnet/resnet34_8xb32_in1k.py',
        checkpoint='checkpoints/resnet34_8xb32_in1k.pth'),
    taps=dict(s_logits='student.head.fc', t_logits='teacher.head.fc'),
    losses=dict(
        loss_dist=dict(
            type='DISTLoss',
            beta=1.0,
            gamma=1.0,
            tau=1.0,
            loss_weight=2.0,
            inputs=dict(preds_S='s_logits', preds_T='t_logits'))))
