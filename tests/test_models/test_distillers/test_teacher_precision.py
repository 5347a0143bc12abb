"""A low-precision frozen teacher (``teacher=dict(precision='bf16')``) on a
real image: the released DeepForest FCOS student of the model zoo serves as
a trained teacher, the image is a real aerial tile shipped by deepforest."""
import glob
import importlib.util
import os.path as osp

import mmcv
import pytest
import torch

from mmkd.registry import MODELS

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
CFG = osp.join(ROOT, 'model_zoo/reviewkd/'
               'fcos_r18-w32_reviewkd_deepforest_seed0.py')


def real_batch():
    spec = importlib.util.find_spec('deepforest')
    if spec is None:
        pytest.skip('deepforest (real aerial images) is not installed: '
                    'pip install --no-deps -r requirements/data_sources.txt')
    img = mmcv.imread(osp.join(osp.dirname(spec.origin), 'data',
                               'OSBS_029.png'))
    tiles = [img[:192, :192], img[192:384, 192:384]]
    return [torch.from_numpy(t.copy()).permute(2, 0, 1) for t in tiles]


def distiller(precision=None, channels_last=False):
    ckpt = glob.glob(CFG[:-3] + '-*.pth')[0]
    from mmengine.config import Config
    student = Config.fromfile(CFG).model
    return MODELS.build(
        dict(
            type='Distiller',
            student=student,
            teacher=dict(
                config=CFG,
                checkpoint=ckpt,
                precision=precision,
                channels_last=channels_last),
            taps=dict(s_fpn='student.neck', t_fpn='teacher.neck'),
            losses=dict(
                loss_fitnet=dict(
                    type='FitNetLoss',
                    inputs=dict(preds_S='s_fpn', preds_T='t_fpn'))),
            probe_input_shape=(3, 64, 64)))


def record_loss_inputs(model):
    seen = {}

    def hook(module, args, kwargs):
        seen.update(kwargs)

    model.graph.losses['loss_fitnet'].register_forward_pre_hook(
        hook, with_kwargs=True)
    return seen


def test_bf16_teacher_features_are_float32_and_close_to_fp32():
    imgs = real_batch()
    fp32, bf16 = distiller(), distiller('bf16', channels_last=True)
    bf16.student.load_state_dict(fp32.student.state_dict())
    # the teacher's weights are cast once; its forward is bf16 channels-last
    weight = bf16.teacher.backbone.conv1.weight
    assert weight.dtype == torch.bfloat16
    assert weight.is_contiguous(memory_format=torch.channels_last)
    values = {}
    for name, model in (('fp32', fp32), ('bf16', bf16)):
        model.eval()
        seen = record_loss_inputs(model)
        with torch.no_grad():
            data = model.data_preprocessor(dict(inputs=imgs), False)
            vals, _ = model._record(data['inputs'], None, 'tensor')
            model.compute_distill_losses(vals, None)
        values[name] = seen['preds_T']
        assert all(t.dtype == torch.float32 for t in seen['preds_T'])
        assert all(t.dtype == torch.float32 for t in seen['preds_S'])
    # per FPN level, the bf16 teacher's features against the fp32 ones:
    # relative (Frobenius) error measured 0.75-0.91 % on these tiles
    for lo, hi in zip(values['bf16'], values['fp32']):
        rel = ((lo - hi).norm() / hi.norm()).item()
        assert 0 < rel < 2e-2, rel


def test_fp32_teacher_runs_outside_the_training_autocast():
    imgs = real_batch()
    model = distiller('fp32').eval()
    seen = {}
    model.teacher.backbone.layer1.register_forward_hook(
        lambda m, a, out: seen.update(dtype=out.dtype))
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        data = model.data_preprocessor(dict(inputs=imgs), False)
        model._record(data['inputs'], None, 'tensor')
    assert seen['dtype'] == torch.float32
    # unset: the teacher follows the training precision
    model = distiller().eval()
    seen.clear()
    model.teacher.backbone.layer1.register_forward_hook(
        lambda m, a, out: seen.update(dtype=out.dtype))
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        model._record(data['inputs'], None, 'tensor')
    assert seen['dtype'] == torch.bfloat16
