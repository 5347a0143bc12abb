"""copy.deepcopy of a distiller (MMEngine's EMAHook copies the model) and a
real Runner with EMAHook: train, validate, resume."""
import copy

import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import init_default_scope
from mmpretrain.structures import DataSample

from mmkd.registry import MODELS
from mmkd.testing.task_configs import cifar_classifier, save_cifar_teacher


@pytest.fixture(scope='module')
def teacher_ckpt(tmp_path_factory):
    return save_cifar_teacher(
        tmp_path_factory.mktemp('teacher') / 'teacher.pth', num_classes=10)


def classifier(width: int) -> dict:
    return cifar_classifier(width, num_classes=10)


def model_cfg(teacher_ckpt):
    return dict(
        type='Distiller',
        _scope_='mmkd',
        student=classifier(4),
        teacher=dict(model=classifier(8), checkpoint=teacher_ckpt),
        taps=dict(
            s3='student.backbone.layer3',
            t3='teacher.backbone.layer3',
            s_logits='student.head.fc',
            t_logits='teacher.head.fc'),
        connectors=dict(
            hint=dict(type='ConvConnector', inputs='s3', targets='t3')),
        losses=dict(
            loss_fitnet=dict(
                type='FitNetLoss', inputs=dict(preds_S='hint', preds_T='t3')),
            loss_kd=dict(
                type='KDLoss',
                inputs=dict(preds_S='s_logits', preds_T='t_logits'))),
        probe_input_shape=(1, 28, 28))


def batch(model, n=4):
    g = torch.Generator().manual_seed(0)
    data = dict(
        inputs=[
            torch.randint(0, 256, (1, 28, 28), generator=g).float()
            for _ in range(n)
        ],
        data_samples=[DataSample().set_gt_label(i % 10) for i in range(n)])
    return model.data_preprocessor(data, True)


def test_deepcopy_records_its_own_taps(teacher_ckpt):
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(model_cfg(teacher_ckpt)).train()
    data = batch(model)
    model(**data, mode='loss')  # a forward before the copy, as in training
    twin = copy.deepcopy(model)
    assert twin.teacher is model.teacher  # frozen: shared, not copied
    assert twin.student is not model.student
    assert twin.connectors['hint'] is twin.graph.connectors['hint']
    assert twin.connectors['hint'] is not model.connectors['hint']
    assert twin.distill_losses['loss_kd'] is twin.graph.losses['loss_kd']
    twin.loss_scales['loss_kd'] = 0.5
    assert model.loss_scales == {}

    ours = model(**data, mode='loss')
    theirs = twin(**data, mode='loss')
    torch.testing.assert_close(theirs['distill.loss_kd'],
                               0.5 * ours['distill.loss_kd'])
    for key in ('student.loss', 'distill.loss_fitnet'):
        torch.testing.assert_close(theirs[key], ours[key])

    # The copy's taps see the copy's student: change its last layer.
    with torch.no_grad():
        twin.student.head.fc.bias += 3.0
    theirs = twin(**data, mode='loss')
    torch.testing.assert_close(
        model(**data, mode='loss')['student.loss'], ours['student.loss'])
    with torch.no_grad():
        s = twin.student.head.fc(
            twin.student.neck(twin.student.backbone(data['inputs']))[-1])
        t = model.teacher.head.fc(
            model.teacher.neck(model.teacher.backbone(data['inputs']))[-1])
    expected = F.kl_div(
        F.log_softmax(s / 4, 1), F.softmax(t / 4, 1),
        reduction='batchmean') * 16 * 0.5
    torch.testing.assert_close(
        theirs['distill.loss_kd'], expected, rtol=1e-4, atol=1e-6)
    # no tensor of a step stays in the taps (a copy mid-training is safe)
    assert all(not tap.calls for tap in model.taps.values())


def test_ema_hook_trains_validates_and_resumes(teacher_ckpt, tmp_path):
    from mmengine.runner import Runner

    from mmkd.testing import make_fashion_mnist
    fmnist = make_fashion_mnist(str(tmp_path / 'fmnist'), n_train=8, n_test=4)
    dataset = dict(
        type='mmpretrain.FashionMNIST',
        data_root=fmnist['data_root'],
        download=False,
        pipeline=[dict(type='mmpretrain.PackInputs')])

    def runner(max_iters, **kwargs):
        return Runner(
            model=model_cfg(teacher_ckpt),
            work_dir=str(tmp_path / 'work'),
            train_dataloader=dict(
                batch_size=4,
                num_workers=0,
                sampler=dict(type='DefaultSampler', shuffle=False),
                dataset=dict(dataset, test_mode=False)),
            val_dataloader=dict(
                batch_size=4,
                num_workers=0,
                sampler=dict(type='DefaultSampler', shuffle=False),
                dataset=dict(dataset, test_mode=True)),
            val_evaluator=dict(type='mmpretrain.Accuracy', topk=(1, )),
            optim_wrapper=dict(
                optimizer=dict(type='SGD', lr=0.05, momentum=0.9)),
            train_cfg=dict(
                by_epoch=False, max_iters=max_iters, val_interval=2),
            val_cfg=dict(),
            custom_hooks=[dict(type='EMAHook', momentum=0.5)],
            default_hooks=dict(
                checkpoint=dict(
                    type='CheckpointHook', interval=2, by_epoch=False),
                logger=dict(type='LoggerHook', interval=1)),
            default_scope='mmpretrain',
            **kwargs)

    first = runner(2)
    first.train()
    ema_hook = next(h for h in first.hooks if type(h).__name__ == 'EMAHook')
    ema = ema_hook.ema_model.module
    assert ema.teacher is first.model.teacher
    metrics = first.message_hub.get_scalar('val/accuracy/top1')
    assert metrics is not None
    ckpt = torch.load(tmp_path / 'work' / 'iter_2.pth', weights_only=False)
    assert 'ema_state_dict' in ckpt
    student_keys = [
        k for k in ckpt['ema_state_dict'] if k.startswith('module.student.')
    ]
    assert student_keys and not any(
        k.startswith('module.teacher') for k in ckpt['ema_state_dict'])
    # The EMA copy's own taps work (it computes the distillation losses of
    # its averaged weights).
    data = batch(ema)
    losses = ema(**data, mode='loss')
    assert torch.isfinite(losses['distill.loss_kd'])

    second = runner(
        4, resume=True, load_from=str(tmp_path / 'work' / 'iter_2.pth'))
    second.train()
    assert second.iter == 4
    ema2 = next(h for h in second.hooks
                if type(h).__name__ == 'EMAHook').ema_model
    assert int(ema2.steps) == 4  # EMA state resumed, then 2 more updates
    ckpt4 = torch.load(tmp_path / 'work' / 'iter_4.pth', weights_only=False)
    moved = [
        k for k in student_keys if
        not torch.equal(ckpt['ema_state_dict'][k], ckpt4['ema_state_dict'][k])
    ]
    assert moved
