# ReviewKD ResNet-34 -> ResNet-18 on ImageNet, on mmpretrain's own ResNet-18
# config (data, 100-epoch schedule, evaluator unchanged). As the official
# ImageNet code: both networks give their *pre-ReLU* stage outputs (the
# residual sum of each stage's last block, i.e. the input of that block's
# ReLU on its 2nd call) plus the pooled feature avgpool(relu(layer4));
# mid channels 512, HCL weight 1.0, no warm-up.
_base_ = ['mmpretrain::resnet/resnet18_8xb32_in1k.py']
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)


def _pre_relu(model, stage, last_block):
    return dict(
        path=f'{model}.backbone.layer{stage}.{last_block}.relu',
        io='input',
        call=1)


model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='Distiller',
    student=_base_.model,
    teacher=dict(
        config='mmpretrain::resnet/resnet34_8xb32_in1k.py',
        checkpoint='checkpoints/resnet34_8xb32_in1k.pth'),
    taps=dict(
        # ResNet-18: 2 blocks per stage; ResNet-34: 3, 4, 6, 3.
        s1=_pre_relu('student', 1, 1),
        s2=_pre_relu('student', 2, 1),
        s3=_pre_relu('student', 3, 1),
        s4=_pre_relu('student', 4, 1),
        s5='student.neck.gap',
        t1=_pre_relu('teacher', 1, 2),
        t2=_pre_relu('teacher', 2, 3),
        t3=_pre_relu('teacher', 3, 5),
        t4=_pre_relu('teacher', 4, 2),
        t5='teacher.neck.gap'),
    connectors=dict(
        review=dict(
            type='ReviewKDConnector',
            mid_channels=512,
            inputs=['s1', 's2', 's3', 's4', 's5'],
            targets=['t1', 't2', 't3', 't4', 't5'])),
    losses=dict(
        loss_hcl=dict(
            type='HCLLoss',
            loss_weight=1.0,
            inputs=dict(
                preds_S='review', preds_T=['t1', 't2', 't3', 't4', 't5']))),
    probe_input_shape=(3, 224, 224))
