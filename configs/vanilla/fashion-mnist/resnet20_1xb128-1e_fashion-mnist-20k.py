# ReviewKD's short-schedule protocol (configs/reviewkd/README.md,
# "Short-schedule protocol"): the ResNet-20 baseline of
# resnet20_1xb128-1e_fashion-mnist.py trained CE-only on the first 20,000
# Fashion-MNIST training images for one epoch (157 iterations), validated on
# 5,000 other training images (50,000-54,999, never trained on by a student),
# tested once at the end on the 10,000 test images (tools/test.py).
# The lr was selected for this baseline on the validation split (seed 100).
_base_ = ['./resnet20_1xb128-1e_fashion-mnist.py']

lr = 0.1  # selected on the validation split from {0.05, 0.1, 0.2}
train_dataloader = dict(dataset=dict(indices=20000))
# the official test set, evaluated once after training
test_dataloader = dict(_base_.val_dataloader)
val_dataloader = dict(
    dataset=dict(
        split='train', test_mode=False, indices=range(50000, 55000)))
optim_wrapper = dict(optimizer=dict(lr=lr))
param_scheduler = dict(milestones=[99, 118, 138])  # 157 * (151, 181, 211) / 240
# a training log line every 10 iterations (logging only: the run is the same)
default_hooks = dict(logger=dict(interval=10))
