# The few-label protocol (configs/kd/README.md, "Few-label protocol"): the
# ResNet-20 baseline of resnet20_1xb128-1e_fashion-mnist.py trained CE-only
# on the first 1,000 Fashion-MNIST training images for 40 epochs (320
# iterations), validated every 4 epochs on 5,000 other training images
# (50,000-54,999, never trained on by a student), tested once at the end on
# the 10,000 test images (tools/test.py).
_base_ = ['./resnet20_1xb128-1e_fashion-mnist.py']

lr = 0.1  # selected on the validation split from {0.05, 0.1, 0.2}
train_dataloader = dict(dataset=dict(indices=1000))
# the official test set, evaluated once after training
test_dataloader = dict(_base_.val_dataloader)
val_dataloader = dict(
    dataset=dict(split='train', test_mode=False, indices=range(50000, 55000)))
optim_wrapper = dict(optimizer=dict(lr=lr))
train_cfg = dict(max_epochs=40, val_interval=4)
param_scheduler = dict(milestones=[201, 241, 281])  # 320 * (151, 181, 211) / 240
default_hooks = dict(logger=dict(interval=8))
