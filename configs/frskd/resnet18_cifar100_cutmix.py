# FRSKD + CutMix (the authors' --aug cutmix --aug_a 1.0); see
# resnet18_cifar100_mixup.py for the soft-target CE.
_base_ = [
    '../vanilla/cifar100/resnet18_cifar100_cutmix_baseline.py',
    './_base_/frskd_resnet.py'
]
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(_delete_=True, student=_base_.model, **_base_.frskd)
model['connectors']['self_teacher']['num_classes'] = 100
model['probe_input_shape'] = (3, 32, 32)
