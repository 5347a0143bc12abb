"""The Fashion-MNIST ReviewKD configs: each distilled run is its baseline's
data, lr and schedule plus the method (the short-schedule protocol's pair
repeats the baseline's overrides, which this checks)."""
import math
import os.path as osp

import pytest
from mmengine.config import Config

CONFIGS = osp.join(osp.dirname(__file__), '..', '..', 'configs')
# (distilled config, its CE baseline, training images)
PAIRS = [
    ('reviewkd/reviewkd_resnet56-resnet20_1xb128-1e_fashion-mnist.py',
     'vanilla/fashion-mnist/resnet20_1xb128-1e_fashion-mnist.py', 60000),
    ('reviewkd/reviewkd_resnet56-resnet20_1xb128-1e_fashion-mnist-20k.py',
     'vanilla/fashion-mnist/resnet20_1xb128-1e_fashion-mnist-20k.py', 20000),
]
SHARED_KEYS = ('train_dataloader', 'val_dataloader', 'test_dataloader',
               'val_evaluator', 'test_evaluator', 'data_preprocessor',
               'optim_wrapper', 'param_scheduler', 'train_cfg')


@pytest.mark.parametrize('name,twin,images', PAIRS)
def test_distilled_config_is_its_baseline_plus_the_method(name, twin, images):
    cfg = Config.fromfile(osp.join(CONFIGS, name))
    base = Config.fromfile(osp.join(CONFIGS, twin))
    assert cfg.model.type == 'Distiller'
    assert cfg.model.student == base.model
    for key in SHARED_KEYS:
        assert cfg.get(key) == base.get(key), key
    # one epoch; the authors' 20-of-240-epoch warm-up and LR steps at 151,
    # 181, 211 of 240 epochs, as fractions of the iterations
    iters = math.ceil(images / cfg.train_dataloader.batch_size)
    assert cfg.train_dataloader.dataset.get('indices', 60000) == images
    hook, = [h for h in cfg.custom_hooks
             if h.type == 'mmkd.DistillLossWarmupHook']
    assert hook.warmup == round(iters * 20 / 240)
    assert cfg.param_scheduler.milestones == [
        round(iters * e / 240) for e in (151, 181, 211)]


def test_short_schedule_splits_are_disjoint_and_test_is_official():
    cfg = Config.fromfile(osp.join(CONFIGS, PAIRS[1][1]))
    train = range(cfg.train_dataloader.dataset.indices)
    val = cfg.val_dataloader.dataset.indices
    assert not set(train) & set(val) and len(val) == 5000
    assert cfg.val_dataloader.dataset.split == 'train'
    assert cfg.test_dataloader.dataset.split == 'test'
    assert cfg.test_dataloader.dataset.get('indices') is None
