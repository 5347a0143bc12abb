# Attention transfer (Zagoruyko & Komodakis, beta=1000 as the paper's
# ImageNet setting) over the four stages of ResNet-34 -> ResNet-18.
_base_ = ['mmpretrain::resnet/resnet18_8xb32_in1k.py']
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

stages = [f'layer{i}' for i in (1, 2, 3, 4)]
model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='Distiller',
    student=_base_.model,
    teacher=dict(
        config='mmpretrain::resnet/resnet34_8xb32_in1k.py',
        checkpoint='checkpoints/resnet34_8xb32_in1k.pth'),
    taps={
        **{f's_{s}': f'student.backbone.{s}' for s in stages},
        **{f't_{s}': f'teacher.backbone.{s}' for s in stages}
    },
    losses=dict(
        loss_at=dict(
            type='ATLoss',
            loss_weight=1000.0,  # beta on the sum, as the authors' code
            inputs=dict(
                preds_S=[f's_{s}' for s in stages],
                preds_T=[f't_{s}' for s in stages]))))
