"""Checkpoints of distillers load across versions of the distiller code.

The state-dict keys and shapes of a distiller with a connector and of SKD's
``AdversarialDistiller`` (student, critic), and the order of the parameters
in each optimizer wrapper (an optimizer's state is stored by that order), are
compared with ``checkpoint_layout.json``, recorded from the code that
wrote the earlier checkpoints (``python <this file> OUT.json`` writes it);
a checkpoint of that layout is then loaded, strictly, into the model and its
optimizers.
"""
import json
import os.path as osp
import sys

import pytest
import torch
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import load_state_dict

from mmkd.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS
from mmkd.testing.task_configs import cifar_classifier as classifier
from mmkd.testing.task_configs import (kd_fitnet_distiller,
                                       pspnet_segmentor as segmentor)

LAYOUT = osp.join(osp.dirname(__file__), 'checkpoint_layout.json')


def build_models(tmp_dir: str) -> dict:
    """``name -> (model, optimizer wrapper config)``."""
    init_default_scope('mmpretrain')
    teacher = MODELS.build(classifier(8))
    kd_ckpt = osp.join(tmp_dir, 'kd_teacher.pth')
    torch.save({'state_dict': teacher.state_dict()}, kd_ckpt)
    kd = MODELS.build(kd_fitnet_distiller(kd_ckpt))

    init_default_scope('mmseg')
    teacher = MODELS.build(segmentor(16))
    skd_ckpt = osp.join(tmp_dir, 'skd_teacher.pth')
    torch.save({'state_dict': teacher.state_dict()}, skd_ckpt)
    skd = MODELS.build(
        dict(
            type='AdversarialDistiller',
            _scope_='mmkd',
            student=segmentor(8),
            teacher=dict(model=segmentor(16), checkpoint=skd_ckpt),
            taps=dict(
                s_logits='student.decode_head.conv_seg',
                t_logits='teacher.decode_head.conv_seg',
                s_feat=dict(path='student.decode_head.conv_seg', io='input'),
                t_feat=dict(path='teacher.decode_head.conv_seg', io='input')),
            losses=dict(
                loss_pi=dict(
                    type='PixelWiseLoss',
                    inputs=dict(preds_S='s_logits', preds_T='t_logits')),
                loss_pa=dict(
                    type='PairWiseLoss',
                    inputs=dict(preds_S='s_feat', preds_T='t_feat'))),
            critic=dict(
                type='SKDDiscriminator',
                conv_dim=8,
                num_blocks=1,
                attention_after=(1, )),
            probe_input_shape=(3, 64, 64)))
    sgd = dict(type='SGD', lr=0.01, momentum=0.9)
    return dict(
        kd=(kd, dict(type='OptimWrapper', optimizer=sgd)),
        skd=(skd,
             dict(
                 constructor='mmkd.DistillerOptimWrapperConstructor',
                 student=dict(optimizer=sgd),
                 critic=dict(optimizer=sgd))))


def optim_wrappers(model, cfg: dict) -> dict:
    """``wrapper name -> OptimWrapper`` (``'default'`` for a single one)."""
    cfg = dict(cfg)
    constructor = cfg.pop('constructor', 'DefaultOptimWrapperConstructor')
    wrapper = OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(type=constructor, optim_wrapper_cfg=cfg))(
            model)
    if hasattr(wrapper, 'optim_wrappers'):
        return dict(wrapper.optim_wrappers)
    return dict(default=wrapper)


def layout(model, wrappers: dict) -> dict:
    """State-dict keys with shapes, and each wrapper's parameter names in
    the order of its optimizer state."""
    names = {id(p): n for n, p in model.named_parameters()}
    return dict(
        state_dict=[[k, list(v.shape)] for k, v in model.state_dict().items()],
        optimizers={
            key: [
                names[id(p)] for group in ow.optimizer.param_groups
                for p in group['params']
            ]
            for key, ow in wrappers.items()
        })


@pytest.fixture(scope='module')
def models(tmp_path_factory):
    torch.manual_seed(0)
    return build_models(str(tmp_path_factory.mktemp('layout')))


@pytest.mark.parametrize('name', ['kd', 'skd'])
def test_checkpoint_layout_is_unchanged(models, name):
    with open(LAYOUT) as f:
        expected = json.load(f)[name]
    model, ow_cfg = models[name]
    wrappers = optim_wrappers(model, ow_cfg)
    actual = layout(model, wrappers)
    assert actual['state_dict'] == expected['state_dict']
    assert actual['optimizers'] == expected['optimizers']
    if name == 'skd':
        assert any(k.startswith('critic.') for k, _ in expected['state_dict'])

    # a checkpoint of the recorded layout loads strictly
    g = torch.Generator().manual_seed(1)
    state = {
        k: torch.rand(shape, generator=g) if shape else torch.tensor(3)
        for k, shape in expected['state_dict']
    }
    load_state_dict(model, state, strict=True)
    loaded = model.state_dict()
    for k, v in state.items():
        assert torch.equal(loaded[k].to(v.dtype), v), k
    for key, ow in wrappers.items():
        params = expected['optimizers'][key]
        momentum = {
            i: dict(momentum_buffer=state[n].clone())
            for i, n in enumerate(params)
        }
        ow.load_state_dict(
            dict(
                state=momentum,
                param_groups=[
                    dict(
                        ow.optimizer.state_dict()['param_groups'][0],
                        params=list(range(len(params))))
                ]))
        by_name = {
            n: ow.optimizer.state[p]['momentum_buffer']
            for n, p in model.named_parameters() if p in ow.optimizer.state
        }
        assert set(by_name) == set(params)
        for n, buf in by_name.items():
            assert torch.equal(buf, state[n]), n


if __name__ == '__main__':
    import tempfile
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        out = {
            name: layout(model, optim_wrappers(model, cfg))
            for name, (model, cfg) in build_models(tmp).items()
        }
    with open(sys.argv[1], 'w') as f:  # one key or name per line
        f.write(
            json.dumps(out, indent=1,
                       separators=(',',
                                   ': ')).replace('\n    ',
                                                  '').replace('\n   ]', ']'))
        f.write('\n')
