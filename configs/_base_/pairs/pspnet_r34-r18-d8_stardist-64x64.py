# The pair of the nuclei protocol (configs/skd/README.md): PSPNet-R18
# student and PSPNet-R34 teacher on the stardist nuclei tiles, the student's
# recipe (450 iterations), taps s_logits / t_logits on the decode heads'
# 1/8-resolution logits. A method's config adds its losses.
_base_ = [
    '../../vanilla/stardist/pspnet_r18-d8_1xb8-450iter_stardist-64x64.py'
]
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='Distiller',
    student=_base_.model,
    teacher=dict(
        config='{{fileDirname}}/../../vanilla/stardist/'
        'pspnet_r34-d8_1xb8-900iter_stardist-64x64.py',
        # trained by tools/experiments/nuclei_protocol.sh
        checkpoint='work_dirs/nuclei_protocol/teacher/seed0/iter_900.pth'),
    taps=dict(
        s_logits='student.decode_head.conv_seg',
        t_logits='teacher.decode_head.conv_seg'))
