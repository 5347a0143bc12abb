# FRSKD: WRN-16-2 self-distilled on CIFAR-100 (three stage features, BiFPNc
# widths 64/128/256), alpha 2, beta 100, T 4.
_base_ = [
    '../vanilla/cifar100/wrn16-2_cifar100_baseline.py', './_base_/frskd_wrn.py'
]
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(_delete_=True, student=_base_.model, **_base_.frskd)
model['connectors']['self_teacher']['num_classes'] = 100
model['probe_input_shape'] = (3, 32, 32)
