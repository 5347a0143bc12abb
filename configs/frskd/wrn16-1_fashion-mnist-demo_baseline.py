# Shortened twin of wrn16-1_fashion-mnist_baseline.py for the demo
# (tools/experiments/frskd_fashion_mnist_demo.sh): one epoch on the first
# 30,000 training images, full 10,000-image test set, constant lr 0.1.
_base_ = ['./wrn16-1_fashion-mnist_baseline.py']

train_dataloader = dict(dataset=dict(indices=30000))
param_scheduler = dict(
    _delete_=True, type='ConstantLR', factor=1.0, by_epoch=True)
train_cfg = dict(max_epochs=1)
