import pytest
import torch
from mmengine.optim import OptimWrapperDict
from torch import nn

from mmkd.registry import OPTIM_WRAPPER_CONSTRUCTORS


class ToyDistiller(nn.Module):
    """The top-level layout of an AdversarialDistiller."""

    def __init__(self):
        super().__init__()
        self.student = nn.Module()
        self.student.backbone = nn.Sequential(
            nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        self.student.head = nn.Conv2d(4, 2, 1)
        self.connectors = nn.ModuleDict(
            dict(adapter=nn.Sequential(nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4))))
        self.distill_losses = nn.ModuleDict()  # no parameters
        self.critic = nn.Sequential(nn.Conv2d(2, 8, 4), nn.BatchNorm2d(8))


def build(cfg, model):
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(type='DistillerOptimWrapperConstructor', optim_wrapper_cfg=cfg))
    return constructor(model)


def ids(params):
    return {id(p) for p in params}


def group_params(wrapper):
    return [p for g in wrapper.optimizer.param_groups for p in g['params']]


def test_student_gets_every_parameter_not_in_the_critic():
    model = ToyDistiller()
    ow = build(
        dict(
            student=dict(
                optimizer=dict(
                    type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-4)),
            critic=dict(
                type='OptimWrapper', optimizer=dict(type='Adam', lr=4e-4))),
        model)
    assert isinstance(ow, OptimWrapperDict)
    assert list(ow.keys()) == ['student', 'critic']
    student_params = group_params(ow['student'])
    critic_params = group_params(ow['critic'])
    expected_student = [
        p for n, p in model.named_parameters() if not n.startswith('critic.')
    ]
    assert ids(student_params) == ids(expected_student)
    assert len(student_params) == len(expected_student)  # no duplicates
    assert ids(critic_params) == ids(model.critic.parameters())
    assert not ids(student_params) & ids(critic_params)
    # the connector's adapter is trained with the student
    assert id(model.connectors.adapter[0].weight) in ids(student_params)
    assert isinstance(ow['student'].optimizer, torch.optim.SGD)
    assert isinstance(ow['critic'].optimizer, torch.optim.Adam)
    assert ow['student'].optimizer.param_groups[0]['lr'] == 0.01
    assert ow['critic'].optimizer.param_groups[0]['lr'] == 4e-4


def test_paramwise_cfg_per_wrapper_uses_distiller_names():
    model = ToyDistiller()
    ow = build(
        dict(
            student=dict(
                optimizer=dict(type='SGD', lr=0.1, weight_decay=1e-4),
                paramwise_cfg=dict(
                    custom_keys={'student.backbone': dict(lr_mult=0.1)},
                    norm_decay_mult=0.0)),
            critic=dict(optimizer=dict(type='SGD', lr=4e-4))), model)
    by_param = {}
    for group in ow['student'].optimizer.param_groups:
        for p in group['params']:
            by_param[id(p)] = group
    conv_w = model.student.backbone[0].weight
    bn_w = model.connectors.adapter[1].weight  # not under a custom key
    head_w = model.student.head.weight
    assert by_param[id(conv_w)]['lr'] == pytest.approx(0.01)
    assert by_param[id(head_w)]['lr'] == pytest.approx(0.1)
    assert by_param[id(bn_w)]['weight_decay'] == 0.0
    assert by_param[id(head_w)]['weight_decay'] == pytest.approx(1e-4)
    assert not ids(by_param) & ids(model.critic.parameters())


def test_constructor_errors():
    model = ToyDistiller()
    sgd = dict(optimizer=dict(type='SGD', lr=0.1))
    with pytest.raises(ValueError, match='needs a `student`'):
        build(dict(critic=sgd), model)
    with pytest.raises(ValueError, match='top-level sub-module'):
        build(dict(student=sgd, discriminator=sgd), model)
    with pytest.raises(ValueError, match='no parameters'):
        build(dict(student=sgd, distill_losses=sgd), model)
    with pytest.raises(ValueError, match='optimizer'):
        build(dict(student=sgd, critic=dict(lr=0.1)), model)
    with pytest.raises(ValueError, match='inside each wrapper'):
        OPTIM_WRAPPER_CONSTRUCTORS.build(
            dict(
                type='DistillerOptimWrapperConstructor',
                optim_wrapper_cfg=dict(student=sgd),
                paramwise_cfg=dict(norm_decay_mult=0.)))
    critic_only = nn.Module()
    critic_only.critic = nn.Linear(2, 2)
    with pytest.raises(ValueError, match='no parameter is left'):
        build(dict(student=sgd, critic=sgd), critic_only)


def test_single_student_wrapper_is_the_whole_model():
    model = ToyDistiller()
    ow = build(dict(student=dict(optimizer=dict(type='SGD', lr=0.1))), model)
    assert list(ow.keys()) == ['student']
    assert ids(group_params(ow['student'])) == ids(model.parameters())
