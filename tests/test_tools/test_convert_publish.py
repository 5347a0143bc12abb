import hashlib
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module')
def to_student(load_tool):
    return load_tool('convert_to_student.py')


@pytest.fixture(scope='module')
def publish(load_tool):
    return load_tool('publish_model.py').publish


def test_student_state_dict_strips_everything_but_the_student(to_student):
    state = {
        'student.backbone.w': torch.ones(1),
        'data_preprocessor.mean': torch.zeros(1),
        'connectors.hint.conv.weight': torch.ones(1),
        'critic.conv.weight': torch.ones(1),
        'distill_losses.loss_x.w': torch.ones(1),
    }
    assert list(to_student.student_state_dict(state)) == ['backbone.w']
    with pytest.raises(ValueError, match='not an mmkd distiller'):
        to_student.student_state_dict({'backbone.w': torch.ones(1)})


def test_student_config_has_no_trace_of_mmkd(to_student):
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
    out = to_student.student_config(cfg)
    assert out.model == dict(type='ImageClassifier', backbone=dict())
    assert out.custom_imports['imports'] == ['my_pkg']
    assert out.custom_hooks == [dict(type='EMAHook')]
    assert 'model_wrapper_cfg' not in out
    assert 'mmkd' not in out.pretty_text


def test_student_config_drops_helper_variables(to_student):
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
    out = to_student.student_config(cfg)
    assert 'reviewkd' not in out and 'hooks' not in out
    assert out.stages == [1, 2, 3]  # no mmkd in it: kept
    assert 'mmkd' not in out.pretty_text


def test_student_config_keeps_the_import_of_an_mmkd_backbone(to_student):
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
    out = to_student.student_config(cfg)
    assert out.model.backbone.type == 'mmkd.CIFARResNet'
    assert out.custom_imports['imports'] == ['mmkd']


def test_student_config_gets_the_students_optimizer_and_schedule(to_student):
    # SKD: one wrapper and one schedule per distiller part
    cfg = Config(
        dict(
            default_scope='mmseg',
            model=dict(_scope_='mmkd', type='AdversarialDistiller',
                       student=dict(type='EncoderDecoder')),
            optim_wrapper=dict(
                constructor='mmkd.DistillerOptimWrapperConstructor',
                student=dict(
                    type='mmkd.AutocastOptimWrapper', dtype='bfloat16',
                    optimizer=dict(type='SGD', lr=0.01),
                    paramwise_cfg=dict(custom_keys={
                        'student.backbone': dict(lr_mult=0.1),
                        'connectors.hint': dict(lr_mult=2.0),
                        'norm': dict(decay_mult=0.0)})),
                critic=dict(type='OptimWrapper',
                            optimizer=dict(type='SGD', lr=4e-4))),
            param_scheduler=dict(student=[dict(type='PolyLR')],
                                 critic=[dict(type='ConstantLR')]),
            default_hooks=dict(
                warmup=dict(type='mmkd.DistillLossWarmupHook', warmup=2),
                logger=dict(type='LoggerHook'))))
    out = to_student.student_config(cfg)
    assert out.optim_wrapper == dict(
        type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01),
        paramwise_cfg=dict(custom_keys={
            'backbone': dict(lr_mult=0.1), 'norm': dict(decay_mult=0.0)}))
    assert out.param_scheduler == [dict(type='PolyLR')]
    assert out.default_hooks == dict(logger=dict(type='LoggerHook'))
    assert 'mmkd' not in out.pretty_text


def test_student_config_refuses_mmkd_left_where_the_runner_reads(to_student):
    cfg = Config(
        dict(
            default_scope='mmpretrain',
            model=dict(_scope_='mmkd', type='Distiller',
                       student=dict(type='ImageClassifier')),
            train_cfg=dict(type='mmkd.SomeLoop', max_epochs=1)))
    with pytest.raises(ValueError, match=r'still need mmkd at train_cfg.type'):
        to_student.student_config(cfg)


def test_convert_refuses_to_overwrite_the_input(tmp_path, to_student):
    ckpt = tmp_path / 'a.pth'
    torch.save({'state_dict': {'student.w': torch.ones(1)}}, ckpt)
    with pytest.raises(ValueError, match='must differ'):
        to_student.convert('unused.py', str(ckpt), str(ckpt))
    assert torch.load(ckpt)['state_dict']['student.w'].item() == 1


def test_publish_drops_training_state_and_hashes(tmp_path, publish):
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


class _WritesAFile:
    """Unpickling calls ``open(path, 'w')``: a stand-in for any code a
    crafted checkpoint could run."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, 'w'))


def _malicious_checkpoint(tmp_path):
    marker = tmp_path / 'pwned.txt'
    ckpt = tmp_path / 'downloaded.pth'
    torch.save(
        dict(state_dict={'student.w': torch.ones(1)},
             meta=dict(note=_WritesAFile(str(marker)))), ckpt)
    assert not marker.exists()
    return ckpt, marker


def test_tools_refuse_a_checkpoint_that_runs_code(tmp_path, to_student,
                                                  publish):
    from mmkd.utils.checkpoint_globals import UnsafeCheckpointError
    ckpt, marker = _malicious_checkpoint(tmp_path)
    asked = f'{open.__module__}.{open.__name__}'  # io.open
    cfg = tmp_path / 'distill.py'
    cfg.write_text("model = dict(type='Distiller', student=dict(type='X'))\n")
    runs = {
        'convert_to_student': ['convert_to_student.py', str(cfg),
                               str(ckpt), str(tmp_path / 'student.pth')],
        'publish_model': ['publish_model.py', str(ckpt),
                          str(tmp_path / 'release.pth')],
    }
    for tool, args in runs.items():
        proc = subprocess.run(
            [sys.executable, osp.join(ROOT, 'tools', args[0])] + args[1:],
            capture_output=True, text=True)
        assert proc.returncode != 0
        assert f'{tool}: refusing to load {ckpt}' in proc.stderr
        assert f'asks for `{asked}`' in proc.stderr  # what it asked for
        assert 'Traceback' not in proc.stderr
    with pytest.raises(UnsafeCheckpointError, match=asked):
        to_student.convert(str(cfg), str(ckpt),
                           str(tmp_path / 'student.pth'))
    with pytest.raises(UnsafeCheckpointError, match=asked):
        publish(str(ckpt), str(tmp_path / 'release.pth'))
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        'distill.py', 'downloaded.pth']  # nothing written
    # the payload is live: full unpickling runs it
    torch.load(ckpt, weights_only=False)
    assert marker.exists()


def test_a_runner_checkpoint_still_converts_and_publishes(
        tmp_path, to_student, publish):
    """A real MMEngine checkpoint (message hub, optimizer and scheduler
    state, meta) loads under the allow-list."""
    from mmengine.logging import HistoryBuffer
    from mmengine.model import BaseModel
    from mmengine.runner import Runner
    from torch import nn

    class TinyDistiller(BaseModel):

        def __init__(self):
            super().__init__()
            self.student = nn.Linear(3, 2)
            self.connectors = nn.ModuleDict(dict(hint=nn.Linear(2, 2)))

        def forward(self, inputs, data_samples=None, mode='tensor'):
            out = self.connectors['hint'](self.student(inputs))
            return dict(loss=out.pow(2).mean()) if mode == 'loss' else out

    torch.manual_seed(0)
    model = TinyDistiller()
    runner = Runner(
        model=model,
        work_dir=str(tmp_path / 'work'),
        train_dataloader=dict(
            dataset=[dict(inputs=torch.randn(3)) for _ in range(4)],
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=2,
            collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
        param_scheduler=dict(type='MultiStepLR', milestones=[1],
                             by_epoch=False),
        train_cfg=dict(by_epoch=False, max_iters=2),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           interval=2, by_epoch=False)),
        default_scope='mmengine')
    runner.train()
    ckpt = str(tmp_path / 'work' / 'iter_2.pth')
    full = torch.load(ckpt, weights_only=False)
    assert {'message_hub', 'optimizer', 'param_schedulers'} <= set(full)
    assert any(
        isinstance(v, HistoryBuffer)
        for v in full['message_hub']['log_scalars'].values())

    cfg = tmp_path / 'distill.py'
    cfg.write_text('model = dict(_scope_=\'mmkd\', type=\'Distiller\', '
                   'student=dict(type=\'ImageClassifier\'))\n')
    to_student.convert(str(cfg), ckpt, str(tmp_path / 'student.pth'))
    out = torch.load(tmp_path / 'student.pth', weights_only=True)
    assert set(out['state_dict']) == {'weight', 'bias'}
    torch.testing.assert_close(out['state_dict']['weight'],
                               model.student.weight.detach())
    assert out['meta']['iter'] == 2

    final = publish(ckpt, str(tmp_path / 'release.pth'))
    out = torch.load(final, weights_only=True)
    assert set(out) == {'meta', 'state_dict'}
    torch.testing.assert_close(out['state_dict']['student.weight'],
                               model.student.weight.detach())
