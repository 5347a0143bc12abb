# FRSKD on Fashion-MNIST, mmkd's real run (README.md): WRN-16-1 with the
# BiFPNc self-teacher (widths 32/64/128 on 28/14/7), alpha 2, beta 100, T 4;
# student, data and 4-epoch schedule from the baseline twin.
_base_ = ['./wrn16-1_fashion-mnist_baseline.py', './_base_/frskd_wrn.py']

model = dict(_delete_=True, student=_base_.model, **_base_.frskd)
model['connectors']['self_teacher']['num_classes'] = 10
model['probe_input_shape'] = (1, 28, 28)
