import hashlib
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(ROOT, 'tools'))

from convert_to_student import (convert, student_config,  # noqa: E402
                                student_state_dict)
from publish_model import publish  # noqa: E402


def test_student_state_dict_strips_everything_but_the_student():
    state = {
        'student.backbone.w': torch.ones(1),
        'data_preprocessor.mean': torch.zeros(1),
        'connectors.hint.conv.weight': torch.ones(1),
        'critic.conv.weight': torch.ones(1),
        'distill_losses.loss_x.w': torch.ones(1),
    }
    assert list(student_state_dict(state)) == ['backbone.w']
    with pytest.raises(ValueError, match='not an mmkd distiller'):
        student_state_dict({'backbone.w': torch.ones(1)})


def test_student_config_has_no_trace_of_mmkd():
    cfg = Config(
        dict(
            default_scope='mmpretrain',
            custom_imports=dict(imports=['mmkd', 'my_pkg']),
            custom_hooks=[
                dict(type='mmkd.DistillLossWarmupHook', warmup=2),
                dict(type='EMAHook')
            ],
            model_wrapper_cfg=dict(type='MMDistributedDataParallel'),
            model=dict(
                _scope_='mmkd',
                type='Distiller',
                student=dict(type='ImageClassifier', backbone=dict()),
                teacher=dict(config='x.py', checkpoint='t.pth'))))
    out = student_config(cfg)
    assert out.model == dict(type='ImageClassifier', backbone=dict())
    assert out.custom_imports['imports'] == ['my_pkg']
    assert out.custom_hooks == [dict(type='EMAHook')]
    assert 'model_wrapper_cfg' not in out
    assert 'mmkd' not in out.pretty_text


def test_student_config_drops_helper_variables():
    # distiller configs keep their shared pieces in top-level variables
    cfg = Config(
        dict(
            default_scope='mmpretrain',
            reviewkd=dict(_scope_='mmkd', type='Distiller', taps=dict()),
            stages=[1, 2, 3],
            hooks=[dict(type='mmkd.DistillLossWarmupHook')],
            model=dict(
                _scope_='mmkd',
                type='Distiller',
                student=dict(type='ImageClassifier', backbone=dict()))))
    out = student_config(cfg)
    assert 'reviewkd' not in out and 'hooks' not in out
    assert out.stages == [1, 2, 3]  # no mmkd in it: kept
    assert 'mmkd' not in out.pretty_text


def test_student_config_keeps_the_import_of_an_mmkd_backbone():
    cfg = Config(
        dict(
            default_scope='mmpretrain',
            custom_imports=dict(imports=['mmkd'], allow_failed_imports=False),
            model=dict(
                _scope_='mmkd',
                type='Distiller',
                student=dict(
                    type='ImageClassifier',
                    backbone=dict(type='mmkd.CIFARResNet', arch='resnet20')))))
    out = student_config(cfg)
    assert out.model.backbone.type == 'mmkd.CIFARResNet'
    assert out.custom_imports['imports'] == ['mmkd']


def test_convert_refuses_to_overwrite_the_input(tmp_path):
    ckpt = tmp_path / 'a.pth'
    torch.save({'state_dict': {'student.w': torch.ones(1)}}, ckpt)
    with pytest.raises(ValueError, match='must differ'):
        convert('unused.py', str(ckpt), str(ckpt))
    assert torch.load(ckpt)['state_dict']['student.w'].item() == 1


def test_publish_drops_training_state_and_hashes(tmp_path):
    ckpt = tmp_path / 'in.pth'
    torch.save(
        dict(state_dict={'w': torch.ones(2)}, optimizer={'x': 1},
             message_hub={}, meta=dict(epoch=3)), ckpt)
    final = publish(str(ckpt), str(tmp_path / 'model.pth'))
    with open(final, 'rb') as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    assert osp.basename(final) == f'model-{sha[:8]}.pth'
    out = torch.load(final)
    assert set(out) == {'state_dict', 'meta'}
    assert osp.isfile(ckpt)  # the input is kept


def test_publish_cli(tmp_path):
    ckpt = tmp_path / 'in.pth'
    torch.save(dict(state_dict={'w': torch.ones(1)}), ckpt)
    out = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', 'publish_model.py'),
         str(ckpt), str(tmp_path / 'm.pth')],
        capture_output=True, text=True, check=True).stdout.strip()
    assert osp.isfile(out) and out.startswith(str(tmp_path / 'm-'))
