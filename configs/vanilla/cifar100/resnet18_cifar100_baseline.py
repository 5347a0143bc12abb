# CE-only twin of ../../frskd/resnet18_cifar100.py: FRSKD's CIFAR-100 setting
# without distillation. mmpretrain's ResNet_CIFAR(depth=18) computes the
# authors' `cifarresnet18` (3x3 stem, no max-pool, BasicBlock x [2, 2, 2, 2]);
# the authors keep PyTorch's default init, hence init_cfg=None and no zero-init
# of the residual BNs. SGD lr 0.1, momentum 0.9, wd 1e-4, 200 epochs, x0.1 at
# epochs 100 and 150 (mmpretrain's cifar10_bs128 schedule), batch 128 on one
# GPU (with N GPUs set train_dataloader.batch_size=128/N).
_base_ = [
    'mmpretrain::_base_/models/resnet18_cifar.py',
    'mmpretrain::_base_/datasets/cifar100_bs16.py',
    'mmpretrain::_base_/schedules/cifar10_bs128.py',
    'mmpretrain::_base_/default_runtime.py',
]

model = dict(
    backbone=dict(init_cfg=None, zero_init_residual=False),
    head=dict(num_classes=100, init_cfg=None))

# The authors' normalisation (classification/dataset.py), on the 0-255 scale.
data_preprocessor = dict(
    num_classes=100,
    mean=[125.307, 122.961, 113.8575],
    std=[51.5865, 50.847, 51.255],
    to_rgb=False)
train_dataloader = dict(batch_size=128)
val_dataloader = dict(batch_size=128)
test_dataloader = val_dataloader
