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
