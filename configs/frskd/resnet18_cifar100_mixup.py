# FRSKD + Mixup (the authors' --aug mixup --aug_a 0.2): every loss sees the
# mixed batch; the student's CE and the self-teacher's CE use mmpretrain's
# soft targets (`gt_score` = lam * y_a + (1 - lam) * y_b), which equals the
# authors' lam * CE(y_a) + (1 - lam) * CE(y_b).
_base_ = [
    '../vanilla/cifar100/resnet18_cifar100_mixup_baseline.py',
    './_base_/frskd_resnet.py'
]
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(_delete_=True, student=_base_.model, **_base_.frskd)
model['connectors']['self_teacher']['num_classes'] = 100
model['probe_input_shape'] = (3, 32, 32)
