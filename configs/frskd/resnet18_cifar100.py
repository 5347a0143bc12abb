# FRSKD (Ji et al., CVPR 2021): ResNet-18 self-distilled on CIFAR-100 with
# the BiFPNc self-teacher, alpha 2, beta 100, T 4 (the authors' README).
# Data, student and schedule: the baseline twin
# configs/vanilla/cifar100/resnet18_cifar100_baseline.py.
_base_ = [
    '../vanilla/cifar100/resnet18_cifar100_baseline.py',
    './_base_/frskd_resnet.py'
]
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(_delete_=True, student=_base_.model, **_base_.frskd)
model['connectors']['self_teacher']['num_classes'] = 100
model['probe_input_shape'] = (3, 32, 32)
