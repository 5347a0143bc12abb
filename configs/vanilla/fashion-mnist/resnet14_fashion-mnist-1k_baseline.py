# FRSKD's small-data regime (configs/frskd/README.md, "Small-data protocol"):
# the ResNet-14 student of resnet14_fashion-mnist_baseline.py trained CE-only
# on the first 1,000 Fashion-MNIST training images until it fits them,
# validated on 2,000 other training images (50,000-51,999, never trained
# on), tested once at the end on the 10,000 test images (tools/test.py).
# The lr was selected for this baseline on the validation split (seed 100).
_base_ = ['./resnet14_fashion-mnist_baseline.py']

epochs = 40
lr = 0.03  # selected on the validation split from {0.1, 0.03}
train_dataloader = dict(batch_size=64, dataset=dict(indices=1000))
# the official test set, evaluated once after training
test_dataloader = dict(_base_.val_dataloader)
val_dataloader = dict(
    dataset=dict(
        split='train', test_mode=False, indices=range(50000, 52000)))
optim_wrapper = dict(optimizer=dict(lr=lr))
# lr x0.1 at 50 % and 75 % of the schedule, as the authors' [100, 150] / 200
param_scheduler = dict(
    _delete_=True,
    type='MultiStepLR',
    by_epoch=True,
    milestones=[epochs // 2, epochs * 3 // 4],
    gamma=0.1)
train_cfg = dict(max_epochs=epochs, val_interval=5)
default_hooks = dict(
    logger=dict(interval=16),
    checkpoint=dict(interval=5, max_keep_ckpts=1))
