# FRSKD with the demo's shortened schedule: resnet14_fashion-mnist.py on
# the data and schedule of
# configs/vanilla/fashion-mnist/resnet14_fashion-mnist-demo_baseline.py.
_base_ = ['./resnet14_fashion-mnist.py']

train_dataloader = dict(dataset=dict(indices=20000))
param_scheduler = dict(
    _delete_=True,
    type='CosineAnnealingLR',
    T_max=1,
    by_epoch=True,
    convert_to_iter_based=True)
train_cfg = dict(max_epochs=1)
