# ReviewKD ResNet-56 -> ResNet-20 in the short-schedule protocol
# (configs/reviewkd/README.md): the method of
# reviewkd_resnet56-resnet20_1xb128-1e_fashion-mnist.py (HCL weight 0.6, the
# authors' value for this pair) with the released teacher (88.15 top-1,
# trained on the complete training set), on exactly the data, lr and
# schedule of its baseline
# configs/vanilla/fashion-mnist/resnet20_1xb128-1e_fashion-mnist-20k.py (the
# overrides below repeat that file's; a test checks they agree).
_base_ = ['./reviewkd_resnet56-resnet20_1xb128-1e_fashion-mnist.py']

lr = 0.1  # the baseline's, selected on its validation split
train_dataloader = dict(dataset=dict(indices=20000))
test_dataloader = dict(_base_.val_dataloader)
val_dataloader = dict(
    dataset=dict(
        split='train', test_mode=False, indices=range(50000, 55000)))
optim_wrapper = dict(optimizer=dict(lr=lr))
param_scheduler = dict(milestones=[99, 118, 138])  # 157 * (151, 181, 211) / 240
# a training log line every 10 iterations (logging only: the run is the same)
default_hooks = dict(logger=dict(interval=10))
# the warm-up of the distillation loss: 20/240 of the 157 iterations
custom_hooks = [
    dict(type='mmkd.DistillLossWarmupHook', warmup=13, by_epoch=False)
]
model = dict(
    teacher=dict(checkpoint='{{fileDirname}}/../../model_zoo/reviewkd/'
                 'resnet56_fashion-mnist_teacher-2994e984.pth'))
