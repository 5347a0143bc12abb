# Shortened twin of resnet14_fashion-mnist_baseline.py for the demo
# (tools/experiments/fashion_mnist_demo.sh frskd): one epoch on the first
# 20,000 training images, lr 0.1 annealed to 0 by a per-iteration cosine;
# full 10,000-image test set.
_base_ = ['./resnet14_fashion-mnist_baseline.py']

train_dataloader = dict(dataset=dict(indices=20000))
param_scheduler = dict(
    _delete_=True,
    type='CosineAnnealingLR',
    T_max=1,
    by_epoch=True,
    convert_to_iter_based=True)
train_cfg = dict(max_epochs=1)
