# FRSKD: CIFAR ResNet-18 self-distilled on TinyImageNet at 32 px (as the
# authors). alpha 2, beta 100, T 4: the authors' CIFAR-100 values (their
# TinyImageNet values are not known here, see README.md).
_base_ = [
    '../vanilla/tinyimagenet/resnet18_tinyimagenet_baseline.py',
    './_base_/frskd_resnet.py'
]
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(_delete_=True, student=_base_.model, **_base_.frskd)
model['connectors']['self_teacher']['num_classes'] = 200
model['probe_input_shape'] = (3, 32, 32)
