"""A CIRKD memory loss wired wrongly fails when the distiller's graph is
built, saying what to map, and the memory loss runs on the build-time probe
(labels stand in for ``gt_sem_seg``) without leaving a trace in the queues
or in torch's random stream."""
import copy
import functools
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config

from mmkd.models.distillers.distill_graph import DistillGraph
from mmkd.registry import MODELS

ROOT = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
CONFIG = osp.join(
    ROOT, 'configs', 'cirkd',
    'cirkd_deeplabv3_r101-r18-d8_8xb2-40k_cityscapes-512x1024.py')
SMALL = dict(
    pixel_memory_size=40,
    region_memory_size=10,
    pixel_contrast_size=4,
    region_contrast_size=2)


@functools.lru_cache()
def config_model() -> dict:
    return Config.fromfile(CONFIG).model.to_dict()


def config_graph():
    """Taps, connectors and losses of the DeepLabV3 CIRKD config (the
    authors' wiring), with small queues."""
    model = copy.deepcopy(config_model())
    model['connectors']['cirkd_memory'].update(SMALL)
    model['connectors']['cirkd_memory']['norm_cfg'] = dict(type='BN')
    return model


@pytest.mark.parametrize('change,message', [
    (dict(memory='s_feat'),
     "memory='s_feat' is not the memory of a CIRKDMemory connector"),
    (dict(memory='cirkd_memory.embed'),
     "memory='cirkd_memory.embed' is not the memory"),
    (dict(preds_S='s_feat'),
     "preds_S='s_feat', but the student side of the memory loss is the "
     "projection of the connector whose memory it uses: map "
     "preds_S='cirkd_memory.embed'"),
    (dict(preds_T='s_feat'),
     "preds_T='s_feat', but connector 'cirkd_memory' projects to the "
     "teacher embedding 't_feat' (its `targets`), which the loss enqueues "
     "and contrasts: map preds_T='t_feat'"),
])
def test_miswired_memory_loss_fails_at_build(change, message):
    model = config_graph()
    DistillGraph(list(model['taps']), model['connectors'],
                 model['losses'])  # the config's own wiring
    model['losses']['loss_memory']['inputs'].update(change)
    with pytest.raises(ValueError, match=re.escape(message)):
        DistillGraph(list(model['taps']), model['connectors'], model['losses'])


def test_memory_loss_without_a_memory_connector_fails_at_build():
    model = config_graph()
    model['connectors'] = dict(
        other=dict(type='ConvConnector', inputs='s_feat', targets='t_feat'))
    model['losses']['loss_memory']['inputs'].update(
        memory='other.memory', preds_S='other.embed')
    with pytest.raises(
            ValueError,
            match=re.escape("CIRKDMemory connectors: none). "
                            'Declare a CIRKDMemory connector')):
        DistillGraph(list(model['taps']), model['connectors'], model['losses'])


def probe_values(B=2, C_s=6, D=8, h=4, w=5, K=19):
    g = torch.Generator().manual_seed(1)
    return dict(
        s_feat=torch.randn(B, C_s, h, w, generator=g),
        t_feat=torch.randn(B, D, h, w, generator=g),
        s_logits=torch.randn(B, K, h, w, generator=g),
        t_logits=torch.randn(B, K, h, w, generator=g))


def test_memory_loss_runs_on_the_probe_and_leaves_no_trace():
    model = config_graph()
    values = probe_values()
    labels = torch.zeros(2, 32, 40, dtype=torch.long)

    # the loss runs on the probe: labels of another batch size fail there
    graph = DistillGraph(
        list(model['taps']), model['connectors'], model['losses'])
    with pytest.raises(
            ValueError,
            match=re.escape(
                "loss 'loss_memory' does not accept the probe features")) as e:
        graph.build(values, probe_gt=lambda loss, key: labels[:1])
    assert 'gt must be label maps (B, H, W) of the same batch' in str(e.value)

    # with the probe's labels: the queues, pointers and random stream are
    # those of the connector built alone with the same seed
    graph = DistillGraph(
        list(model['taps']), model['connectors'], model['losses'])
    torch.manual_seed(0)
    graph.build(values, probe_gt=lambda loss, key: labels)
    after_build = torch.rand(3)
    cfg = {
        k: v
        for k, v in model['connectors']['cirkd_memory'].items()
        if k not in ('inputs', 'targets')
    }
    torch.manual_seed(0)
    alone = MODELS.build(
        dict(cfg, _scope_='mmkd', in_channels=6, out_channels=8))
    assert torch.equal(torch.rand(3), after_build)
    memory = graph.connectors['cirkd_memory']
    for name, buffer in alone.named_buffers():
        if 'queue' in name:
            assert torch.equal(getattr(memory, name), buffer), name
    assert not memory.pixel_queue_ptr.any()
    assert not memory.region_queue_ptr.any()
    # a training step's enqueue does write (class 0 of both images)
    loss = graph.losses['loss_memory']
    loss(memory(values['s_feat'])['embed'], values['t_feat'], memory, labels)
    assert memory.region_queue_ptr[0] == 2 and memory.pixel_queue_ptr[0] > 0
