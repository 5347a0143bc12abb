# FRSKD: ResNet-18 (from scratch) self-distilled on Stanford 40 Actions at
# 224 px.
# alpha 2, beta 100, T 4: the authors' published (CIFAR-100) values; the
# paper's per-dataset table could not be verified (README.md).
_base_ = [
    '../vanilla/stanford40/resnet18_stanford40_baseline.py',
    './_base_/frskd_resnet.py'
]
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(_delete_=True, student=_base_.model, **_base_.frskd)
model['connectors']['self_teacher']['num_classes'] = 40
