# FRSKD on the small-data regime of
# configs/vanilla/fashion-mnist/resnet14_fashion-mnist-1k_baseline.py
# (configs/frskd/README.md, "Small-data protocol"): exactly the baseline's
# data, schedule and optimiser, plus the BiFPNc self-teacher, KD and AT.
_base_ = [
    '../vanilla/fashion-mnist/resnet14_fashion-mnist-1k_baseline.py',
    './_base_/frskd_resnet14.py'
]
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(_delete_=True, student=_base_.model, **_base_.frskd)
