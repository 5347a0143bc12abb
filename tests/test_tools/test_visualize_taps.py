"""tools/visualize_taps.py on a real image (a tile of the stardist nuclei
image, converted by the project's converter): the grid has one row per
compared feature pair, and the drawn maps are the channel means (or AT
attention maps) of features recorded here independently, by hooks of our
own and the connector run by hand."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from PIL import Image

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SKD = osp.join(ROOT, 'configs', 'skd',
               'skd-pi-pa_pspnet_r34-r18-d8_1xb8-450iter_stardist-64x64.py')
FRSKD = osp.join(ROOT, 'configs', 'frskd', 'resnet14_fashion-mnist.py')
DPI = 40


@pytest.fixture(scope='module')
def vt(load_tool):
    return load_tool('visualize_taps.py')


@pytest.fixture(scope='module')
def nuclei_tile(tmp_path_factory, load_tool):
    """A real 128x128 validation tile of the stardist nuclei image."""
    out = str(tmp_path_factory.mktemp('nuclei'))
    assert load_tool('dataset_converters/stardist_to_mmseg.py').main(
        [out]) == 0
    path = osp.join(out, 'img_dir', 'val', 'img2d_r0_c0.png')
    assert Image.open(path).size == (128, 128)
    return path


def record_by_hand(model, batch, modules):
    """Outputs (or inputs) of ``modules`` (name -> (module, io)) in one
    eval forward of the student and the teacher, by our own hooks."""
    got, handles = {}, []
    for name, (module, io) in modules.items():
        if io == 'output':
            handles.append(module.register_forward_hook(
                lambda m, a, out, name=name: got.__setitem__(name, out)))
        else:
            handles.append(module.register_forward_pre_hook(
                lambda m, a, name=name: got.__setitem__(name, a[0].clone())))
    with torch.no_grad():
        model.student(batch['inputs'], batch['data_samples'], mode='tensor')
        if model.teacher is not None:
            model.teacher(batch['inputs'], batch['data_samples'],
                          mode='tensor')
    for h in handles:
        h.remove()
    return got


def attention(f):
    """AT's map of the first sample, as ATLoss computes it."""
    from mmkd.models.losses import ATLoss
    return ATLoss().attention(f)[0].view(f.shape[-2:])


def png_size(vt, rows):
    return (round(len(vt.COLUMNS) * vt.CELL_W * DPI),
            round(rows * vt.CELL_H * DPI))


def test_skd_pairs_on_a_nuclei_tile(vt, nuclei_tile, tmp_path):
    cfg = Config.fromfile(SKD)
    torch.manual_seed(0)
    model = vt.build_distiller(cfg, random_teacher=True)
    assert not model.training and not model.teacher.training
    batch = vt.prepare_batch(cfg, model, nuclei_tile)
    assert batch['inputs'].shape == (1, 3, 128, 128)
    rows = vt.tap_maps(model, batch, map_kind='mean')
    # loss_pi pairs the logits, loss_pa the PSP outputs; no connector
    assert [r['label'] for r in rows] == ['loss_pi', 'loss_pa']
    assert [set(r['cells']) for r in rows] == [{'student', 'teacher'}] * 2

    got = record_by_hand(
        model, batch, {
            's_logits': (model.student.decode_head.conv_seg, 'output'),
            't_logits': (model.teacher.decode_head.conv_seg, 'output'),
            's_feat': (model.student.decode_head.conv_seg, 'input'),
            't_feat': (model.teacher.decode_head.conv_seg, 'input'),
        })
    for row, (s, t) in zip(rows, [('s_logits', 't_logits'),
                                  ('s_feat', 't_feat')]):
        for col, name in (('student', s), ('teacher', t)):
            cell = row['cells'][col]
            assert cell['name'] == name
            assert cell['shape'] == tuple(got[name].shape)
            torch.testing.assert_close(
                torch.from_numpy(cell['array']), got[name][0].mean(0))
    assert rows[1]['cells']['student']['shape'][1:] == (128, 16, 16)
    assert rows[1]['cells']['teacher']['shape'][1:] == (256, 16, 16)

    out = str(tmp_path / 'skd.png')
    fig = vt.plot_tap_maps(rows, out, dpi=DPI)
    assert Image.open(out).size == png_size(vt, 2)
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 4  # 2 rows x (student, teacher)
    for ax in images:  # one colour scale per row
        row = rows[[a for a in fig.axes if a.images].index(ax) // 2]
        lo = min(c['array'].min() for c in row['cells'].values())
        hi = max(c['array'].max() for c in row['cells'].values())
        assert ax.images[0].get_clim() == pytest.approx((lo, hi))


def test_frskd_connector_column_and_attention_maps(vt, nuclei_tile):
    cfg = Config.fromfile(FRSKD)
    torch.manual_seed(0)
    model = vt.build_distiller(cfg)
    # no loader in the Fashion-MNIST test pipeline: read grey, 1 channel
    batch = vt.prepare_batch(cfg, model, nuclei_tile)
    assert batch['inputs'].shape == (1, 1, 128, 128)
    rows = vt.tap_maps(model, batch)  # auto: AT rows as attention maps
    # KD compares logits (no map); AT: 3 stages vs the self-teacher's maps
    assert [r['label'] for r in rows] == ['loss_at'] * 3
    assert {r['map'] for r in rows} == {'attention'}
    stages = ['layer1', 'layer2', 'layer3']
    got = record_by_hand(
        model, batch,
        {s: (getattr(model.student.backbone, s), 'output')
         for s in stages})
    with torch.no_grad():
        st = model.connectors['self_teacher']([got[s] for s in stages])
    for i, (row, stage) in enumerate(zip(rows, stages)):
        student, connector = row['cells']['student'], row['cells']['connector']
        assert student['name'] == f's_{stage}'
        assert connector['name'] == f'self_teacher.feats[{i}]'
        torch.testing.assert_close(
            torch.from_numpy(student['array']), attention(got[stage]))
        torch.testing.assert_close(
            torch.from_numpy(connector['array']),
            attention(st['feats'][i]))
        assert 'teacher' not in row['cells']  # self-distillation
    assert rows[0]['cells']['student']['shape'] == (1, 16, 128, 128)

    by_tap = vt.tap_maps(model, batch, rows='taps', map_kind='mean')
    assert [r['label'] for r in by_tap] == [f's_{s}' for s in stages]


def test_cli_writes_the_grid(vt, nuclei_tile, tmp_path, capsys):
    out = str(tmp_path / 'grid.png')
    assert vt.main(
        [FRSKD, nuclei_tile, '--rows', 'taps', '--out', out, '--dpi',
         str(DPI)]) == 0
    assert Image.open(out).size == png_size(vt, 3)  # s_layer1..3
    assert 'wrote' in capsys.readouterr().out


def test_bad_input_fails_clearly(vt, nuclei_tile):
    cfg = Config.fromfile(FRSKD)
    with pytest.raises(ValueError, match='no teacher'):
        vt.build_distiller(cfg, random_teacher=True)
    model = vt.build_distiller(cfg)
    with pytest.raises(FileNotFoundError, match='does not exist'):
        vt.prepare_batch(cfg, model, nuclei_tile + '.missing')
    with pytest.raises(ValueError, match='map kind'):
        vt.feature_map(torch.zeros(1, 2, 3, 3), 'max')
    plain = Config.fromfile(
        osp.join(ROOT, 'configs', 'vanilla', 'fashion-mnist',
                 'resnet14_fashion-mnist_baseline.py'))
    with pytest.raises(ValueError, match='not an mmkd distiller'):
        vt.build_distiller(plain)
