import copy

from mmengine.config import Config

from mmkd.utils import replace_sync_bn, setup_cpu_distributed


def test_replace_sync_bn_everywhere():
    cfg = dict(
        backbone=dict(norm_cfg=dict(type='SyncBN', requires_grad=True)),
        heads=[dict(norm_cfg=dict(type='SyncBN')),
               dict(norm_cfg=dict(type='GN', num_groups=2))])
    out = replace_sync_bn(cfg)
    assert out['backbone']['norm_cfg'] == dict(type='BN', requires_grad=True)
    assert out['heads'][0]['norm_cfg']['type'] == 'BN'
    assert out['heads'][1]['norm_cfg']['type'] == 'GN'
    assert cfg['backbone']['norm_cfg']['type'] == 'SyncBN'  # not mutated


def test_no_launcher_changes_nothing():
    cfg = Config(dict(launcher='none', model=dict(
        norm_cfg=dict(type='SyncBN'))))
    setup_cpu_distributed(cfg)
    assert 'model_wrapper_cfg' not in cfg
    assert cfg.model.norm_cfg.type == 'SyncBN'


def test_enable_amp_single_wrapper():
    from mmkd.utils import enable_amp
    cfg = Config(dict(optim_wrapper=dict(
        type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1))))
    enable_amp(cfg, cuda=True)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'


def test_enable_amp_cuda_dtype_and_given_loss_scale():
    from mmkd.utils import enable_amp
    cfg = Config(dict(optim_wrapper=dict(
        optimizer=dict(type='SGD', lr=0.1), loss_scale=512.)))
    enable_amp(cfg, dtype='bf16', cuda=True)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 512.
    assert cfg.optim_wrapper.dtype == 'bfloat16'


def test_enable_amp_cpu_is_bf16_autocast_without_scaler():
    import pytest

    from mmkd.utils import enable_amp
    cfg = Config(dict(optim_wrapper=dict(
        type='AmpOptimWrapper', loss_scale='dynamic',
        optimizer=dict(type='SGD', lr=0.1))))
    enable_amp(cfg, cuda=False)
    assert cfg.optim_wrapper.type == 'mmkd.AutocastOptimWrapper'
    assert cfg.optim_wrapper.dtype == 'bfloat16'
    assert 'loss_scale' not in cfg.optim_wrapper
    with pytest.raises(ValueError, match='float16 needs CUDA'):
        enable_amp(cfg, dtype='float16', cuda=False)
    with pytest.raises(ValueError, match="'float16' or 'bfloat16'"):
        enable_amp(cfg, dtype='int8', cuda=False)


def test_enable_amp_skd_config_keeps_the_critic_fp32():
    import os.path as osp

    import pytest

    from mmkd.utils import enable_amp
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    cfg = Config.fromfile(osp.join(
        root, 'configs/skd/skd_pspnet_r101-r18-d8_4xb2-80k_cityscapes-'
        '512x1024.py'))
    assert 'type' not in cfg.optim_wrapper  # the constructor's own keys
    cpu_cfg = copy.deepcopy(cfg)
    enable_amp(cfg, cuda=True)
    assert cfg.optim_wrapper.student.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.critic.get('type', 'OptimWrapper') == \
        'OptimWrapper'
    assert 'type' not in cfg.optim_wrapper  # constructor config untouched
    enable_amp(cpu_cfg, cuda=False)
    assert cpu_cfg.optim_wrapper.student.type == 'mmkd.AutocastOptimWrapper'
    assert cpu_cfg.optim_wrapper.critic.get('type', 'OptimWrapper') == \
        'OptimWrapper'
    with pytest.raises(ValueError, match='no optimizer wrapper'):
        enable_amp(Config(dict(optim_wrapper=dict(constructor='X'))))
