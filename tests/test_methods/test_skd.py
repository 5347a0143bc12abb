"""SKD (pixel-wise + pair-wise + holistic) with the AdversarialDistiller on
tiny real mmseg segmentors (ResNetV1c-18 + PSPHead, 64x64 inputs)."""
import copy

import pytest
import torch
import torch.nn.functional as F
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

import mmkd.models.distillers.adversarial_distiller as adv_module
from mmkd.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS

NUM_CLASSES = 3
SIZE = 64


def segmentor(base_channels: int, channels: int) -> dict:
    """A real mmseg PSPNet with a narrow ResNetV1c-18 (output stride 8)."""
    norm_cfg = dict(type='BN', requires_grad=True)
    return dict(
        type='EncoderDecoder',
        _scope_='mmseg',
        data_preprocessor=dict(
            type='SegDataPreProcessor',
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            bgr_to_rgb=True,
            size=(SIZE, SIZE),
            pad_val=0,
            seg_pad_val=255),
        backbone=dict(
            type='ResNetV1c',
            depth=18,
            base_channels=base_channels,
            stem_channels=base_channels,
            out_indices=(0, 1, 2, 3),
            dilations=(1, 1, 2, 4),
            strides=(1, 2, 1, 1),
            norm_cfg=norm_cfg,
            contract_dilation=True),
        decode_head=dict(
            type='PSPHead',
            in_channels=base_channels * 8,
            in_index=3,
            channels=channels,
            pool_scales=(1, 2, 3, 6),
            dropout_ratio=0.0,  # deterministic forward, see the stale test
            num_classes=NUM_CLASSES,
            norm_cfg=norm_cfg,
            align_corners=False,
            loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0)),
        train_cfg=dict(),
        test_cfg=dict(mode='whole'))


@pytest.fixture(scope='module')
def teacher_ckpt(tmp_path_factory):
    init_default_scope('mmseg')
    torch.manual_seed(1)
    teacher = MODELS.build(segmentor(16, 32))
    path = tmp_path_factory.mktemp('teacher') / 'teacher.pth'
    torch.save({'state_dict': teacher.state_dict()}, path)
    return str(path)


def skd_cfg(teacher_ckpt, critic=None, **overrides):
    cfg = dict(
        type='AdversarialDistiller',
        student=segmentor(8, 16),
        teacher=dict(model=segmentor(16, 32), checkpoint=teacher_ckpt),
        taps=dict(
            s_logits='student.decode_head.conv_seg',
            t_logits='teacher.decode_head.conv_seg',
            s_feat=dict(path='student.decode_head.conv_seg', io='input'),
            t_feat=dict(path='teacher.decode_head.conv_seg', io='input')),
        losses=dict(
            loss_pi=dict(
                type='PixelWiseLoss',
                loss_weight=10.0,
                inputs=dict(preds_S='s_logits', preds_T='t_logits')),
            loss_pa=dict(
                type='PairWiseLoss',
                loss_weight=0.5,
                inputs=dict(preds_S='s_feat', preds_T='t_feat'))),
        # 8x8 logits: one stride-2 block, then the final 4x4 conv -> 1x1
        critic=critic or dict(
            type='SKDDiscriminator',
            conv_dim=8,
            num_blocks=1,
            attention_after=(1, )),
        critic_inputs=dict(preds_S='s_logits', preds_T='t_logits'),
        probe_input_shape=(3, SIZE, SIZE))
    cfg.update(overrides)
    return cfg


def build(cfg):
    init_default_scope('mmseg')
    return MODELS.build(dict(cfg, _scope_='mmkd'))


def optim_wrappers(model, student_lr=0.01, critic_lr=0.05):
    """Plain SGD (no momentum, no weight decay) so a step is -lr * grad."""
    return OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(
            type='mmkd.DistillerOptimWrapperConstructor',
            optim_wrapper_cfg=dict(
                student=dict(optimizer=dict(type='SGD', lr=student_lr)),
                critic=dict(optimizer=dict(type='SGD', lr=critic_lr)))))(
                    model)


def batch(n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for _ in range(n):
        inputs.append(
            torch.randint(0, 256, (3, SIZE, SIZE),
                          generator=g).to(torch.uint8))
        label = torch.randint(0, NUM_CLASSES, (1, SIZE, SIZE), generator=g)
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=label)
        sample.set_metainfo(
            dict(
                img_shape=(SIZE, SIZE),
                ori_shape=(SIZE, SIZE),
                pad_shape=(SIZE, SIZE)))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def params(module):
    return {n: p.detach().clone() for n, p in module.named_parameters()}


def buffers(module):
    return {n: b.detach().clone() for n, b in module.named_buffers()}


def same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def changed(a, b):
    return [k for k in a if not torch.equal(a[k], b[k])]


class Recorder:
    """Outputs of modules (by forward hooks) and the critic loss's inputs."""

    def __init__(self, model):
        self.outputs = {}
        self.critic_calls = []
        s_head, t_head = model.student.decode_head, model.teacher.decode_head
        for name, module in (('s_logits', s_head.conv_seg), ('t_logits',
                                                             t_head.conv_seg)):
            # prepend: the teacher's recorder stops its forward once its
            # taps are recorded
            module.register_forward_hook(self._output(name), prepend=True)
        for name, module in (('s_feat', s_head.conv_seg), ('t_feat',
                                                           t_head.conv_seg)):
            module.register_forward_pre_hook(self._input(name), prepend=True)
        model.critic_loss.register_forward_pre_hook(self._critic_call)
        self.model = model

    def _output(self, name):

        def hook(module, args, output):
            self.outputs[name] = output.detach().clone()

        return hook

    def _input(self, name):

        def hook(module, args):
            self.outputs[name] = args[0].detach().clone()

        return hook

    def _critic_call(self, module, args):
        critic, preds_S, preds_T = args[:3]
        self.critic_calls.append(
            dict(
                preds_S=preds_S,
                preds_T=preds_T,
                critic=copy.deepcopy(critic),
                rng=torch.get_rng_state(),
                student=params(self.model.student)))


def test_build_infers_critic_channels_and_checks_config(teacher_ckpt):
    model = build(skd_cfg(teacher_ckpt))
    assert model.critic.in_channels == NUM_CLASSES
    assert model.critic.preprocess.num_features == NUM_CLASSES  # logits+BN
    assert model.condition_on_image is False
    assert not any(k.startswith('teacher') for k in model.state_dict())
    assert any(k.startswith('critic.') for k in model.state_dict())

    bad = skd_cfg(teacher_ckpt)
    bad['critic'] = dict(bad['critic'], in_channels=NUM_CLASSES + 1)
    with pytest.raises(ValueError, match='in_channels'):
        build(bad)
    with pytest.raises(ValueError, match='no tap or connector'):
        build(
            skd_cfg(
                teacher_ckpt,
                critic_inputs=dict(preds_S='s_logit', preds_T='t_logits')))
    with pytest.raises(ValueError, match='same shape'):
        build(
            skd_cfg(
                teacher_ckpt,
                critic_inputs=dict(preds_S='s_feat', preds_T='t_logits')))
    # A plain optimizer wrapper cannot train the critic.
    ow = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(TypeError, match='DistillerOptimWrapperConstructor'):
        model.train_step(batch(), ow)


def test_critic_only_config_probes_by_itself(teacher_ckpt):
    # No distill losses: the parent runs no probe, the critic still gets
    # its channels.
    model = build(skd_cfg(teacher_ckpt, losses=None))
    assert model.critic.in_channels == NUM_CLASSES


def test_update_order_stale_logits_and_logs(teacher_ckpt):
    torch.manual_seed(0)
    model = build(skd_cfg(teacher_ckpt)).train()
    ow = optim_wrappers(model)
    rec = Recorder(model)
    data = batch()

    events = []

    def spy(name, wrapper):
        orig = wrapper.step

        def step(**kwargs):
            before = (params(model.student), params(model.critic))
            orig(**kwargs)
            events.append(
                (name, before, (params(model.student), params(model.critic))))

        wrapper.step = step

    spy('student', ow['student'])
    spy('critic', ow['critic'])

    # The student's logits on this batch before the step (train mode, no
    # dropout: a deterministic function of the weights).
    with torch.no_grad():
        pre = model.data_preprocessor(copy.deepcopy(data), True)
        fresh_before = model.student(pre['inputs'], mode='tensor')
    log_vars = model.train_step(copy.deepcopy(data), ow)

    assert [e[0] for e in events] == ['student', 'critic']
    (_, s_before, s_after), (_, c_before, c_after) = events
    # student step: the student moves, the critic does not
    assert changed(s_before[0], s_after[0])
    assert same(s_before[1], s_after[1])
    # critic step: the critic moves, the student does not
    assert same(c_before[0], c_after[0])
    assert changed(c_before[1], c_after[1])

    # The critic step used the logits of the forward before the student
    # step (detached), not the updated student's.
    call, = rec.critic_calls
    assert not call['preds_S'].requires_grad
    torch.testing.assert_close(call['preds_S'], rec.outputs['s_logits'])
    torch.testing.assert_close(call['preds_S'], fresh_before)
    torch.testing.assert_close(call['preds_T'], rec.outputs['t_logits'])
    with torch.no_grad():
        fresh_after = model.student(pre['inputs'], mode='tensor')
    assert (fresh_after - call['preds_S']).abs().max() > 1e-6

    assert set(log_vars) == {
        'loss', 'decode.loss_ce', 'decode.acc_seg', 'distill.loss_pi',
        'distill.loss_pa', 'distill.loss_holistic', 'critic.loss_wd',
        'critic.loss_gp', 'critic.skipped'
    }
    student_total = sum(
        v for k, v in log_vars.items()
        if 'loss' in k and not k.startswith(('loss', 'critic.')))
    torch.testing.assert_close(log_vars['loss'], student_total)
    assert log_vars['critic.skipped'] == 0


def test_critic_step_is_its_own_loss_gradient(teacher_ckpt):
    """Plain SGD: the critic moves by exactly -lr * grad of the WGAN-GP loss
    on the stale logits, so the gradients the student's backward left on
    the critic were dropped."""
    torch.manual_seed(0)
    model = build(skd_cfg(teacher_ckpt)).train()
    lr = 0.05
    ow = optim_wrappers(model, critic_lr=lr)
    rec = Recorder(model)
    model.train_step(batch(), ow)

    call, = rec.critic_calls
    # Independent WGAN-GP loss (docs/en/methods.md#skd-holistic), weights 0.1
    # and 10, on a copy of the critic taken right before the critic loss,
    # with the same random interpolation, calling D on teacher, student,
    # interpolates (the order matters for the spectral-norm power
    # iterations).
    s, t = call['preds_S'], call['preds_T']
    critic = copy.deepcopy(call['critic'])
    torch.set_rng_state(call['rng'])
    d_t = critic(t).mean()
    d_s = critic(s).mean()
    alpha = torch.rand(s.shape[0], 1, 1, 1)
    x_hat = (alpha * t + (1 - alpha) * s).requires_grad_(True)
    grad, = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    gp = ((grad.flatten(1).norm(dim=1) - 1)**2).mean()
    loss = 0.1 * (d_s - d_t) + 0.1 * 10.0 * gp
    critic.zero_grad()
    loss.backward()
    expected = {
        n: p.detach() - lr * p.grad
        for n, p in critic.named_parameters() if p.grad is not None
    }
    actual = params(model.critic)
    assert expected
    for name, value in expected.items():
        torch.testing.assert_close(actual[name], value, rtol=1e-4, atol=1e-6)


def test_distill_losses_equal_independent_computation(teacher_ckpt):
    torch.manual_seed(0)
    model = build(skd_cfg(teacher_ckpt)).train()
    ow = optim_wrappers(model)
    rec = Recorder(model)
    critic_before = copy.deepcopy(model.critic)
    log_vars = model.train_step(batch(), ow)
    out = rec.outputs

    # pixel-wise: sum_{b,h,w} KL(p_t || p_s) / (H W), weight 10
    s, t = out['s_logits'], out['t_logits']
    B, C, H, W = s.shape
    p_t = F.softmax(t, dim=1)
    kl = (p_t * (F.log_softmax(t, dim=1) - F.log_softmax(s, dim=1)))
    expected_pi = 10.0 * kl.sum() / (H * W)
    torch.testing.assert_close(
        log_vars['distill.loss_pi'], expected_pi, rtol=1e-5, atol=1e-6)

    # pair-wise: 2x2 max-pooled nodes, cosine similarity, mean squared
    # difference over B * M * M, weight 0.5 (naive loops)
    def nodes(f):
        k = (f.shape[2] // 2, f.shape[3] // 2)
        pooled = F.max_pool2d(f, k, k, ceil_mode=True)
        return pooled.flatten(2).transpose(1, 2)  # (B, M, C)

    ns, nt = nodes(out['s_feat']), nodes(out['t_feat'])
    M = ns.shape[1]
    total = 0.
    for b in range(B):
        for i in range(M):
            for j in range(M):
                cos_s = (ns[b, i] @ ns[b, j]) / ((ns[b, i].norm() + 1e-8) *
                                                 (ns[b, j].norm() + 1e-8))
                cos_t = (nt[b, i] @ nt[b, j]) / ((nt[b, i].norm() + 1e-8) *
                                                 (nt[b, j].norm() + 1e-8))
                total += (cos_s - cos_t)**2
    expected_pa = 0.5 * total / (B * M * M)
    torch.testing.assert_close(
        log_vars['distill.loss_pa'], expected_pa, rtol=1e-4, atol=1e-7)

    # holistic generator term: -0.1 * mean D(s) with the critic as it was
    # before the step
    with torch.no_grad():
        expected_ho = -0.1 * critic_before(s).mean()
    torch.testing.assert_close(
        log_vars['distill.loss_holistic'], expected_ho, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('critic_loss', [
    dict(type='HolisticCriticLoss', lambda_gp=float('inf'), loss_weight=0.1),
    dict(type='HolisticCriticLoss', lambda_gp=10.0, loss_weight=float('nan')),
])
def test_non_finite_critic_loss_skips_the_step(teacher_ckpt, monkeypatch,
                                               critic_loss):
    warnings = []
    monkeypatch.setattr(adv_module, 'print_log',
                        lambda msg, **kw: warnings.append((msg, kw)))
    torch.manual_seed(0)
    model = build(skd_cfg(teacher_ckpt, critic_loss=critic_loss)).train()
    ow = optim_wrappers(model)
    rec = Recorder(model)
    student0 = params(model.student)
    critic0 = params(model.critic)

    for step in range(2):
        log_vars = model.train_step(batch(seed=step), ow)
        assert log_vars['critic.skipped'] == 1
        # the critic (parameters and the buffers the critic loss's forward
        # touched) is as it was right before the critic loss
        call = rec.critic_calls[-1]
        assert same(params(call['critic']), params(model.critic))
        assert same(buffers(call['critic']), buffers(model.critic))
        assert all(
            torch.isfinite(b).all() for b in buffers(model.critic).values())
    assert same(critic0, params(model.critic))
    assert changed(student0, params(model.student))  # G steps did happen
    for p in model.parameters():
        assert torch.isfinite(p).all()
    assert torch.isfinite(log_vars['loss'])
    assert len(warnings) == 2
    msg, kw = warnings[0]
    assert 'non-finite critic loss' in msg and kw['level'] >= 30


def test_image_conditioned_critic_sees_the_normalised_input(teacher_ckpt):
    critic = dict(
        type='SKDDiscriminator',
        conv_dim=8,
        num_blocks=1,
        attention_after=(1, ),
        input_mode='image_softmax')
    torch.manual_seed(0)
    model = build(skd_cfg(teacher_ckpt, critic=critic)).train()
    assert model.condition_on_image is True
    # 3 image channels + softmax over the classes
    assert model.critic.blocks[0][0].in_channels == 3 + NUM_CLASSES
    images = []
    model.critic.register_forward_pre_hook(
        lambda m, args: images.append(args[1].detach().clone()))
    data = batch()
    expected = model.data_preprocessor(copy.deepcopy(data), True)['inputs']
    # the preprocessor normalises: (rgb - mean) / std
    mean = torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(3, 1, 1)
    rgb = torch.stack(data['inputs']).float().flip(1)
    torch.testing.assert_close(expected, (rgb - mean) / std)

    log_vars = model.train_step(copy.deepcopy(data), optim_wrappers(model))
    assert log_vars['critic.skipped'] == 0
    # the G term, then the critic loss (teacher, student): all see the image
    assert len(images) >= 3
    for image in images:
        torch.testing.assert_close(image, expected)


def test_separate_ddp_trains_and_keeps_plain_checkpoint_keys(
        teacher_ckpt, tmp_path):
    """Under MMSeparateDistributedDataParallel (the configs' wrapper, here
    with one gloo process) the train step runs through the per-part DDP
    wrappers and the state dict has the single-process keys."""
    import torch.distributed as torch_dist
    from mmengine.model import MMSeparateDistributedDataParallel
    from mmengine.runner.checkpoint import load_state_dict

    torch.manual_seed(0)
    model = build(skd_cfg(teacher_ckpt)).train()
    plain_keys = list(model.state_dict())
    torch_dist.init_process_group(
        'gloo', init_method=f'file://{tmp_path}/pg', rank=0, world_size=1)
    try:
        wrapped = MMSeparateDistributedDataParallel(model)
        assert type(model.student).__name__ == 'MMDistributedDataParallel'
        assert type(model.critic).__name__ == 'MMDistributedDataParallel'
        ow = optim_wrappers(wrapped)
        critic0 = {
            k: v.clone()
            for k, v in model.state_dict().items() if k.startswith('critic.')
        }
        log_vars = wrapped.train_step(batch(), ow)
        assert log_vars['critic.skipped'] == 0
        state = model.state_dict()
        assert list(state) == plain_keys
        assert changed(critic0, state)  # the critic step ran
        # MMEngine's loader (resume) puts the plain keys back into the
        # wrapped parts
        zeroed = {k: torch.zeros_like(v) for k, v in state.items()}
        load_state_dict(model, zeroed, strict=True)
        assert all(not v.any() for v in model.state_dict().values())
        load_state_dict(model, state, strict=True)
        assert same(state, model.state_dict())
    finally:
        torch_dist.destroy_process_group()


def test_amp_bf16_student_critic_stays_float32(teacher_ckpt):
    """--amp on CPU (enable_amp): the student's step runs under bf16
    autocast, the critic's own WGAN-GP step in float32, and both move."""
    from mmengine.config import Config

    from mmkd.engine import AutocastOptimWrapper
    from mmkd.utils import enable_amp
    cfg = Config(dict(optim_wrapper=dict(
        constructor='mmkd.DistillerOptimWrapperConstructor',
        student=dict(optimizer=dict(type='SGD', lr=0.01)),
        critic=dict(optimizer=dict(type='SGD', lr=0.05)))))
    enable_amp(cfg, cuda=False)
    model = build(skd_cfg(teacher_ckpt))
    ow_cfg = cfg.optim_wrapper.to_dict()
    ow = OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(type=ow_cfg.pop('constructor'), optim_wrapper_cfg=ow_cfg))(model)
    assert isinstance(ow['student'], AutocastOptimWrapper)
    assert type(ow['critic']).__name__ == 'OptimWrapper'
    dtypes = []
    first_conv = next(m for m in model.critic.modules()
                      if isinstance(m, torch.nn.Conv2d))
    first_conv.register_forward_hook(
        lambda m, a, out: dtypes.append(out.dtype))
    student_conv = model.student.backbone.stem[0] if hasattr(
        model.student.backbone, 'stem') else model.student.backbone.conv1
    student_dtypes = []
    student_conv.register_forward_hook(
        lambda m, a, out: student_dtypes.append(out.dtype))
    before_s, before_c = params(model.student), params(model.critic)
    log = model.train_step(batch(), ow)
    assert torch.isfinite(log['loss'])
    assert student_dtypes == [torch.bfloat16]
    # critic calls: the generator term inside the student's autocast, then
    # the critic step's scores (fake, real, interpolates), all float32
    assert dtypes[0] == torch.bfloat16
    assert dtypes[1:] and all(d == torch.float32 for d in dtypes[1:])
    assert changed(before_s, params(model.student))
    assert changed(before_c, params(model.critic))
    assert all(p.dtype == torch.float32 for p in model.parameters())
