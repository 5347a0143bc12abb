# What the ReviewKD configs on FPN detectors share (the official detection
# code): the review path runs over the student's FPN outputs (every level the
# neck gives, from the coarsest down; mid channels = the FPN width, 256) and
# HCL compares each level with the teacher's FPN output; the teacher runs
# backbone + neck only; no warm-up. A config inherits its student's detector
# config and this file, and builds its model from `reviewkd` with the
# student, the teacher and the HCL weight:
#   model = dict(_base_.reviewkd, _delete_=True, student=_base_.model,
#                teacher=dict(...),
#                losses=dict(loss_hcl=dict(_base_.reviewkd.losses.loss_hcl,
#                                          loss_weight=...)))
reviewkd = dict(
    _scope_='mmkd',
    type='Distiller',
    taps=dict(s_fpn='student.neck', t_fpn='teacher.neck'),
    connectors=dict(
        review=dict(
            type='ReviewKDConnector',
            mid_channels=256,
            inputs='s_fpn',
            targets='t_fpn')),
    losses=dict(
        loss_hcl=dict(
            type='HCLLoss', inputs=dict(preds_S='review', preds_T='t_fpn'))))
