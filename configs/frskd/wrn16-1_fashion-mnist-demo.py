# FRSKD twin of wrn16-1_fashion-mnist-demo_baseline.py (the demo's schedule).
_base_ = ['./wrn16-1_fashion-mnist-demo_baseline.py', './_base_/frskd_wrn.py']

model = dict(_delete_=True, student=_base_.model, **_base_.frskd)
model['connectors']['self_teacher']['num_classes'] = 10
model['probe_input_shape'] = (1, 28, 28)
