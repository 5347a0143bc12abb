# DIST ResNet-56 -> ResNet-20 in the few-label protocol (configs/kd/
# README.md, configs/dist/README.md): the KD arm's config with the KD term
# replaced by DIST at the authors' CIFAR settings (T = 4, beta = gamma = 1,
# weight 2, as configs/dist/dist_resnet32x4-resnet8x4_1xb128-240e_cifar100.py),
# not tuned here; data, lr and schedule of the CE baseline.
_base_ = ['../kd/kd_resnet56-resnet20_1xb128-40e_fashion-mnist-1k.py']
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(
    losses=dict(
        _delete_=True,
        loss_dist=dict(
            type='DISTLoss',
            beta=1.0,
            gamma=1.0,
            tau=4.0,
            loss_weight=2.0,
            inputs=dict(preds_S='s_logits', preds_T='t_logits'))))
