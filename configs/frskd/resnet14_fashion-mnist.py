# FRSKD (Ji et al., CVPR 2021) on Fashion-MNIST, mmkd's real run on the
# complete training set. Student, data and 2-epoch schedule: the baseline
# twin; the method (BiFPNc self-teacher, CE + alpha KD + beta AT, alpha 2,
# beta 100, T 4): _base_/frskd_resnet14.py.
_base_ = [
    '../vanilla/fashion-mnist/resnet14_fashion-mnist_baseline.py',
    './_base_/frskd_resnet14.py'
]
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(_delete_=True, student=_base_.model, **_base_.frskd)
