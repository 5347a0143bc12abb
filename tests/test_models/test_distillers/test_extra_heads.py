"""Taps that run a head the tensor-mode forward skips (``run_head``): mmseg
auxiliary heads of tiny PSPNets (width 8 <- 16, 64 px), as the DIST
segmentation recipe distils them."""
import pytest
import torch
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from torch import nn

from mmkd.models.distillers.extra_heads import heads_to_run
from mmkd.models.distillers.feature_tap import FeatureTap
from mmkd.models.losses import DISTLoss
from mmkd.registry import MODELS
from mmkd.testing.task_configs import pspnet_segmentor

SIZE = 64
AUX = dict(run_head='auxiliary_head')


@pytest.fixture(scope='module')
def aux_teacher_ckpts(tmp_path_factory):
    """Width-16 PSPNet teachers with one and with two auxiliary heads."""
    init_default_scope('mmseg')
    paths = {}
    for heads in (1, 2):
        torch.manual_seed(heads)
        teacher = MODELS.build(pspnet_segmentor(16, auxiliary_heads=heads))
        path = tmp_path_factory.mktemp('aux_teacher') / f'{heads}.pth'
        torch.save({'state_dict': teacher.state_dict()}, path)
        paths[heads] = str(path)
    return paths


def aux_distiller(ckpt, heads=1, taps=None, losses=None, **teacher):
    init_default_scope('mmseg')
    torch.manual_seed(0)
    if taps is None:
        taps = dict(
            s_logits='student.decode_head.conv_seg',
            t_logits='teacher.decode_head.conv_seg',
            s_aux=dict(path='student.auxiliary_head.conv_seg', **AUX),
            t_aux=dict(path='teacher.auxiliary_head.conv_seg', **AUX))
        losses = dict(
            loss_dist=dict(
                type='DISTLoss',
                inputs=dict(preds_S='s_logits', preds_T='t_logits')),
            loss_dist_aux=dict(
                type='DISTLoss',
                loss_weight=0.4,
                inputs=dict(preds_S='s_aux', preds_T='t_aux')))
    return MODELS.build(
        dict(
            type='Distiller',
            _scope_='mmkd',
            student=pspnet_segmentor(8, auxiliary_heads=heads),
            teacher=dict(
                model=pspnet_segmentor(16, auxiliary_heads=heads),
                checkpoint=ckpt,
                **teacher),
            taps=taps,
            losses=losses or {},
            probe_input_shape=(3, SIZE, SIZE)))


def batch(seed=0, n=2):
    """Normalised inputs and data samples with random labels."""
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(n):
        sample = SegDataSample(
            gt_sem_seg=PixelData(
                data=torch.randint(0, 3, (1, SIZE, SIZE), generator=g)))
        sample.set_metainfo(
            dict(
                img_shape=(SIZE, SIZE),
                ori_shape=(SIZE, SIZE),
                pad_shape=(SIZE, SIZE)))
        samples.append(sample)
    return torch.randn(n, 3, SIZE, SIZE, generator=g), samples


def call_counter(module):
    calls = []
    module.register_forward_hook(lambda m, a, out: calls.append(out))
    return calls


def aux_logits(model, x):
    """Each auxiliary head of ``model`` on ``model.extract_feat(x)``."""
    feats = model.extract_feat(x)
    heads = model.auxiliary_head
    heads = heads if isinstance(heads, nn.ModuleList) else [heads]
    return [head(feats) for head in heads]


@pytest.mark.parametrize('heads', [1, 2])
def test_aux_taps_record_the_heads_on_the_extracted_features(
        aux_teacher_ckpts, heads):
    if heads == 1:
        model = aux_distiller(aux_teacher_ckpts[1])
        names = dict(s_aux=('student', 0), t_aux=('teacher', 0))
    else:  # a ModuleList of auxiliary heads: each runs
        model = aux_distiller(
            aux_teacher_ckpts[2],
            heads=2,
            taps={
                f'{m[0]}_aux{i}':
                dict(path=f'{m}.auxiliary_head.{i}.conv_seg', **AUX)
                for m in ('student', 'teacher')
                for i in (0, 1)
            })
        names = {
            f'{m[0]}_aux{i}': (m, i)
            for m in ('student', 'teacher')
            for i in (0, 1)
        }
    shapes = {n: model.probe_shapes[n] for n in names}
    assert shapes == dict.fromkeys(names, (2, 3, 8, 8))
    model.eval()
    x, _ = batch()
    with torch.no_grad():
        values = model.extract_features(x)
        refs = {
            m: aux_logits(getattr(model, m), x)
            for m in ('student', 'teacher')
        }
    for name, (m, i) in names.items():
        torch.testing.assert_close(values[name], refs[m][i], rtol=0, atol=0)
    # the models are left as they were
    assert 'extract_feat' not in vars(model.teacher)
    assert 'extract_feat' not in vars(model.student)


def test_training_step_runs_each_aux_head_once_and_trains_only_the_student(
        aux_teacher_ckpts):
    model = aux_distiller(aux_teacher_ckpts[1]).train()
    s_calls = call_counter(model.student.auxiliary_head.conv_seg)
    t_calls = call_counter(model.teacher.auxiliary_head.conv_seg)
    x, samples = batch()

    torch.manual_seed(3)  # the student's auxiliary head has dropout
    losses, values = model._losses(x, samples)
    # one call each: the student's own loss-mode forward, the teacher's tap
    assert len(s_calls) == 1 and len(t_calls) == 1
    assert 'decode.loss_ce' in losses and 'aux.loss_ce' in losses
    assert values['t_aux'].grad_fn is None
    assert not values['t_aux'].requires_grad
    assert values['s_aux'].requires_grad
    # the recorded values are the heads' logits on the extracted features
    torch.manual_seed(3)
    s_ref = aux_logits(model.student, x)[0]
    with torch.no_grad():
        t_ref = aux_logits(model.teacher, x)[0]
    torch.testing.assert_close(values['s_aux'], s_ref, rtol=0, atol=0)
    torch.testing.assert_close(values['t_aux'], t_ref, rtol=0, atol=0)
    torch.testing.assert_close(
        losses['distill.loss_dist_aux'],
        DISTLoss(loss_weight=0.4)(s_ref, t_ref),
        rtol=0,
        atol=0)

    model.zero_grad()
    losses['distill.loss_dist_aux'].backward()
    aux_grad = model.student.auxiliary_head.conv_seg.weight.grad
    assert aux_grad is not None and aux_grad.abs().sum() > 0
    assert model.student.decode_head.conv_seg.weight.grad is None
    assert all(p.grad is None for p in model.teacher.parameters())

    # a whole training step: still one call of each auxiliary head
    del s_calls[:], t_calls[:]
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    inputs = [(torch.rand(3, SIZE, SIZE) * 255).to(torch.uint8)] * 2
    log = model.train_step(dict(inputs=inputs, data_samples=samples), wrapper)
    assert len(s_calls) == 1 and len(t_calls) == 1
    assert torch.isfinite(log['distill.loss_dist_aux'])


def test_teacher_heads_keep_its_precision_and_early_stop(aux_teacher_ckpts):
    """The heads run inside the teacher's forward: with precision='fp32'
    under a bf16 autocast the auxiliary logits are float32 values, and a
    teacher tapped only on its auxiliary head stops before its decode
    head."""
    model = aux_distiller(
        aux_teacher_ckpts[1],
        precision='fp32',
        taps=dict(
            s_aux=dict(path='student.auxiliary_head.conv_seg', **AUX),
            t_aux=dict(path='teacher.auxiliary_head.conv_seg', **AUX)),
        losses=dict(
            loss_dist_aux=dict(
                type='DISTLoss', inputs=dict(preds_S='s_aux',
                                             preds_T='t_aux'))))
    model.eval()
    decode_calls = call_counter(model.teacher.decode_head.conv_seg)
    x, _ = batch(1)
    with torch.no_grad():
        with torch.autocast('cpu', dtype=torch.bfloat16):
            values = model.extract_features(x)
        ref = aux_logits(model.teacher, x)[0]
    assert values['s_aux'].dtype == torch.bfloat16  # the student's autocast
    assert values['t_aux'].dtype == torch.float32
    torch.testing.assert_close(values['t_aux'], ref, rtol=0, atol=0)
    assert decode_calls == []


def test_a_head_that_does_not_exist_fails_at_build(aux_teacher_ckpts):
    taps = dict(
        s_aux=dict(path='student.auxiliary_head.conv_seg', **AUX),
        t_aux=dict(
            path='teacher.auxiliary_head.conv_seg', run_head='aux_head'))
    with pytest.raises(ValueError) as info:
        aux_distiller(aux_teacher_ckpts[1], taps=taps)
    msg = str(info.value)
    assert "tap 't_aux': run_head='aux_head'" in msg
    assert "the teacher (EncoderDecoder) has no module 'aux_head'" in msg
    assert 'auxiliary_head' in msg  # the close name
    # a model built without an auxiliary head
    init_default_scope('mmseg')
    with pytest.raises(ValueError, match="has no module 'auxiliary_head'"):
        MODELS.build(
            dict(
                type='Distiller',
                _scope_='mmkd',
                student=pspnet_segmentor(8),
                taps=dict(
                    s_aux=dict(path='student.decode_head.conv_seg', **AUX)),
                probe_input_shape=(3, SIZE, SIZE)))
    # a model without extract_feat
    with pytest.raises(ValueError, match=r"run_head='0'.*no extract_feat"):
        heads_to_run(
            nn.Sequential(nn.Conv2d(3, 3, 1)), 'student',
            [FeatureTap('s', 'student.0', run_head='0')])
    with pytest.raises(ValueError, match='run_head must be the module path'):
        FeatureTap('s', 'student.0', run_head='')
