"""Bad inputs of the distillers fail with what is wrong and the way out."""
import logging
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from mmpretrain.structures import DataSample

from mmkd.models.distillers import TapError
from mmkd.registry import MODELS
from mmkd.testing.task_configs import cifar_classifier as classifier
from mmkd.utils.setup_env import (check_critic_param_scheduler,
                                  select_model_wrapper, setup_cpu_distributed)

REPO = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


@pytest.fixture(autouse=True, scope='module')
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def log_records():
    records = []

    class Handler(logging.Handler):

        def emit(self, record):
            records.append((record.levelno, record.getMessage()))

    logger = MMLogger.get_current_instance()
    handler = Handler(level=logging.INFO)
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


# --------------------------------------------------------------------------
# ReviewKD with a batch of one sample
# --------------------------------------------------------------------------
def test_reviewkd_batch_of_one_names_batch_size_and_drop_last(tmp_path):
    init_default_scope('mmpretrain')
    torch.manual_seed(1)
    teacher = MODELS.build(classifier(8))
    ckpt = str(tmp_path / 'teacher.pth')
    torch.save({'state_dict': teacher.state_dict()}, ckpt)
    base = Config.fromfile(
        osp.join(REPO, 'configs/reviewkd/_base_/reviewkd_cifar.py'))
    cfg = base.reviewkd.to_dict()
    cfg.update(
        student=classifier(4),
        teacher=dict(model=classifier(8), checkpoint=ckpt),
        probe_input_shape=(1, 16, 16))
    cfg['taps'].update(
        t1='teacher.backbone.layer1',
        t2='teacher.backbone.layer2',
        t3='teacher.backbone.layer3',
        t4='teacher.neck.gap')
    model = MODELS.build(cfg).train()

    def data(n):
        return model.data_preprocessor(
            dict(
                inputs=[torch.rand(1, 16, 16) * 255 for _ in range(n)],
                data_samples=[DataSample().set_gt_label(0) for _ in range(n)]),
            True)

    assert model(**data(2), mode='loss')['distill.loss_hcl'] > 0
    with pytest.raises(
            ValueError,
            match=r"connector 'review' got a batch "
            r'of size 1.*batch size >= 2.*drop_last=True'):
        model(**data(1), mode='loss')


# --------------------------------------------------------------------------
# A tap on a module that the probe's tensor-mode forward does not run
# --------------------------------------------------------------------------
def segmentor(aux: bool = True) -> dict:
    norm = dict(type='BN', requires_grad=True)
    cfg = dict(
        type='EncoderDecoder',
        _scope_='mmseg',
        data_preprocessor=dict(
            type='SegDataPreProcessor',
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            size=(64, 64),
            seg_pad_val=255),
        backbone=dict(
            type='ResNetV1c',
            depth=18,
            base_channels=8,
            stem_channels=8,
            dilations=(1, 1, 2, 4),
            strides=(1, 2, 1, 1),
            norm_cfg=norm,
            contract_dilation=True),
        decode_head=dict(
            type='PSPHead',
            in_channels=64,
            in_index=3,
            channels=8,
            pool_scales=(1, 2),
            num_classes=3,
            norm_cfg=norm,
            loss_decode=dict(type='CrossEntropyLoss')),
        train_cfg=dict(),
        test_cfg=dict(mode='whole'))
    if aux:
        cfg['auxiliary_head'] = dict(
            type='FCNHead',
            in_channels=32,
            in_index=2,
            channels=8,
            num_convs=1,
            num_classes=3,
            norm_cfg=norm,
            loss_decode=dict(type='CrossEntropyLoss', loss_weight=0.4))
    return cfg


def test_tap_on_a_loss_mode_only_module_explains_the_probe():
    init_default_scope('mmseg')
    cfg = dict(
        type='Distiller',
        _scope_='mmkd',
        student=segmentor(),
        taps=dict(
            s_aux='student.auxiliary_head.conv_seg',
            s_logits='student.decode_head.conv_seg'),
        losses=dict(
            loss_kd=dict(
                type='KDLoss',
                inputs=dict(preds_S='s_aux', preds_T='s_logits'))),
        probe_input_shape=(3, 64, 64))
    with pytest.raises(TapError) as info:
        MODELS.build(cfg)
    msg = str(info.value)
    assert "tap 's_aux' (student.auxiliary_head.conv_seg)" in msg
    assert 'did not run in the probe' in msg
    assert 'tensor mode' in msg and '(2, 3, 64, 64)' in msg
    assert 'call=' not in msg  # the old, unhelpful advice
    assert "dict(path='student.backbone', index=" in msg
    # the other fix: the tap runs the head on the extracted features
    assert ("dict(path='student.auxiliary_head.conv_seg', "
            "run_head='auxiliary_head')") in msg


# --------------------------------------------------------------------------
# SKD: a critic too deep for the logits
# --------------------------------------------------------------------------
def test_critic_too_deep_for_the_logits_names_the_knobs(tmp_path):
    init_default_scope('mmseg')
    torch.manual_seed(1)
    teacher = MODELS.build(segmentor(aux=False))
    ckpt = str(tmp_path / 'teacher.pth')
    torch.save({'state_dict': teacher.state_dict()}, ckpt)
    model = MODELS.build(
        dict(
            type='AdversarialDistiller',
            _scope_='mmkd',
            student=segmentor(aux=False),
            teacher=dict(model=segmentor(aux=False), checkpoint=ckpt),
            taps=dict(
                s_logits='student.decode_head.conv_seg',
                t_logits='teacher.decode_head.conv_seg'),
            # 8x8 logits: 2 blocks -> 2x2, too small for the final 4x4 conv
            critic=dict(
                type='SKDDiscriminator',
                conv_dim=8,
                num_blocks=2,
                attention_after=()),
            probe_input_shape=(3, 64, 64))).train()
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    samples = []
    for _ in range(2):
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=torch.zeros(1, 64, 64).long())
        s.set_metainfo(
            dict(img_shape=(64, 64), ori_shape=(64, 64), pad_shape=(64, 64)))
        samples.append(s)
    with pytest.raises(ValueError) as info:
        model(torch.randn(2, 3, 64, 64), samples, mode='loss')
    msg = str(info.value)
    assert "critic_inputs.preds_S ('s_logits'), is 8x8" in msg
    assert 'num_blocks=2 needs at least 16x16' in msg
    assert 'input (here 64x64)' in msg and 'output stride (here 8)' in msg
    assert 'crop' in msg and 'num_blocks=...' in msg


# --------------------------------------------------------------------------
# Process set-up: DDP wrappers and the critic's schedule
# --------------------------------------------------------------------------
def _cfg(model_type, **kwargs):
    return Config(
        dict(launcher='pytorch', model=dict(type=model_type), **kwargs))


def test_wrapper_is_chosen_for_each_distiller(log_records):
    cfg = _cfg('mmkd.AdversarialDistiller')
    select_model_wrapper(cfg)
    assert cfg.model_wrapper_cfg == dict(
        type='MMSeparateDistributedDataParallel',
        broadcast_buffers=False,
        find_unused_parameters=False)
    assert any('MMSeparateDistributedDataParallel' in m
               for _, m in log_records)

    cfg = _cfg('Distiller', find_unused_parameters=True)
    select_model_wrapper(cfg)
    assert cfg.model_wrapper_cfg.type == \
        'mmkd.DistillerDistributedDataParallel'
    assert cfg.model_wrapper_cfg.find_unused_parameters is True

    # MMEngine's plain wrapper for a Distiller: its subclass, same args
    cfg = _cfg(
        'mmkd.Distiller',
        model_wrapper_cfg=dict(
            type='MMDistributedDataParallel', broadcast_buffers=True))
    select_model_wrapper(cfg)
    assert cfg.model_wrapper_cfg == dict(
        type='mmkd.DistillerDistributedDataParallel', broadcast_buffers=True)

    # a given, right wrapper (e.g. the SKD configs') is kept as is
    cfg = _cfg(
        'AdversarialDistiller',
        model_wrapper_cfg=dict(type='MMSeparateDistributedDataParallel'))
    select_model_wrapper(cfg)
    assert cfg.model_wrapper_cfg == dict(
        type='MMSeparateDistributedDataParallel')

    # not a distiller, or no launcher: nothing
    cfg = _cfg('mmpretrain.ImageClassifier')
    select_model_wrapper(cfg)
    assert 'model_wrapper_cfg' not in cfg
    cfg = Config(dict(launcher='none', model=dict(type='Distiller')))
    select_model_wrapper(cfg)
    assert 'model_wrapper_cfg' not in cfg


@pytest.mark.parametrize(
    'wrapper',
    ['MMDistributedDataParallel', 'mmkd.DistillerDistributedDataParallel'])
def test_whole_model_wrapper_for_the_adversarial_distiller_fails(wrapper):
    cfg = _cfg('AdversarialDistiller', model_wrapper_cfg=dict(type=wrapper))
    with pytest.raises(
            ValueError,
            match="needs model_wrapper_cfg=dict\\(type="
            "'MMSeparateDistributedDataParallel'\\).*critic"):
        select_model_wrapper(cfg)


def test_cpu_launch_sets_the_separate_wrapper(tmp_path):
    """What tools/train.py does on a CPU-only machine with --launcher
    pytorch (the process group exists already here)."""
    import torch.distributed as torch_dist
    if torch.cuda.is_available():
        pytest.skip('the CPU path')
    torch_dist.init_process_group(
        'gloo', init_method=f'file://{tmp_path}/pg', rank=0, world_size=1)
    try:
        cfg = _cfg('AdversarialDistiller')
        setup_cpu_distributed(cfg)
        assert cfg.model_wrapper_cfg.type == \
            'MMSeparateDistributedDataParallel'
        assert cfg.model_wrapper_cfg.device_ids is None
    finally:
        torch_dist.destroy_process_group()


def _skd_optim():
    sgd = dict(type='SGD', lr=0.01)
    return dict(
        constructor='mmkd.DistillerOptimWrapperConstructor',
        student=dict(optimizer=sgd),
        critic=dict(optimizer=sgd))


def test_one_schedule_for_student_and_critic_warns(log_records):
    poly = [dict(type='PolyLR', power=0.9, end=100, by_epoch=False)]
    cfg = Config(
        dict(
            model=dict(type='AdversarialDistiller'),
            optim_wrapper=_skd_optim(),
            param_scheduler=poly))
    check_critic_param_scheduler(cfg)
    warnings = [m for level, m in log_records if level == logging.WARNING]
    assert len(warnings) == 1
    assert "critic follows the student's schedule" in warnings[0]
    assert 'param_scheduler=dict(student=[...], critic=[...])' in warnings[0]

    # one schedule per wrapper: fine; a missing one: a clear error
    cfg.param_scheduler = dict(student=poly, critic=[])
    check_critic_param_scheduler(cfg)
    assert len([m for level, m in log_records
                if level == logging.WARNING]) == 1
    cfg.param_scheduler = dict(student=poly)
    with pytest.raises(
            ValueError, match=r"optimizer wrapper\(s\) "
            r"\['critic'\]"):
        check_critic_param_scheduler(cfg)
    # a single-optimizer Distiller: no warning
    cfg = Config(
        dict(
            model=dict(type='Distiller'),
            optim_wrapper=dict(optimizer=dict(type='SGD', lr=1)),
            param_scheduler=poly))
    check_critic_param_scheduler(cfg)
    assert len([m for level, m in log_records
                if level == logging.WARNING]) == 1


def test_boxes_for_a_classifier_fail_at_build():
    """A loss fed by ground truth runs on the probe when its keys have
    stand-ins: FGD's boxes asked of an mmpretrain classifier fail when the
    model is built, naming the loss and what the data must carry."""
    init_default_scope('mmpretrain')
    cfg = dict(
        type='mmkd.Distiller',
        student=classifier(4),
        teacher=None,
        taps=dict(s3='student.backbone.layer3'),
        losses=dict(
            loss_fgd=dict(
                type='FGDLoss',
                inputs=dict(preds_S='s3', preds_T='s3', rela_S='s3',
                            rela_T='s3', gt_instances='gt_instances',
                            img_metas='img_metas'))),
        probe_input_shape=(1, 16, 16))
    with pytest.raises(ValueError,
                       match=r"loss 'loss_fgd'.*LoadAnnotations\(with_bbox"):
        MODELS.build(cfg)
