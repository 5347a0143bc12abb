"""The synthetic dataset writers load through the real dataset classes."""
import filecmp
import gzip
import importlib
import json
import os.path as osp

import numpy as np
import pytest

from mmkd.testing import (make_cityscapes, make_coco, make_cub,
                          make_fashion_mnist, make_imagenet_folder,
                          write_idx)


def import_or_skip(name: str):
    """Import mmdet/mmseg modules; they need mmcv's compiled ops."""
    try:
        return importlib.import_module(name)
    except ImportError as e:  # e.g. "No module named 'mmcv._ext'"
        pytest.skip(f'{name} cannot be imported ({e}); mmdet and mmseg '
                    'datasets need mmcv built with its C++ ops')


def _nearest_centroid_accuracy(train_x, train_y, test_x, test_y) -> float:
    classes = sorted(set(train_y))
    centroids = np.stack([
        np.mean([x for x, y in zip(train_x, train_y) if y == c], axis=0)
        for c in classes
    ])
    dists = ((np.asarray(test_x)[:, None] - centroids[None])**2).sum(-1)
    pred = np.asarray(classes)[dists.argmin(1)]
    return float((pred == np.asarray(test_y)).mean())


def test_make_cub_loads_with_mmpretrain_cub(tmp_path):
    from mmpretrain.datasets import CUB
    info = make_cub(str(tmp_path), num_classes=3, per_class=4, size=64)
    metainfo = dict(classes=info['classes'])
    train = CUB(data_root=info['data_root'], split='train', metainfo=metainfo)
    test = CUB(data_root=info['data_root'], split='test', metainfo=metainfo)
    # 4 images per class, the first 2 for training
    assert len(train) == 6 and len(test) == 6
    assert train.CLASSES == info['classes']
    assert [train.get_data_info(i)['gt_label']
            for i in range(6)] == [0, 0, 1, 1, 2, 2]
    assert [test.get_data_info(i)['gt_label']
            for i in range(6)] == [0, 0, 1, 1, 2, 2]
    # the image of each sample sits in its class's folder and loads
    from mmcv import imread
    for i in range(6):
        data = test.get_data_info(i)
        folder = osp.basename(osp.dirname(data['img_path']))
        assert folder == info['classes'][data['gt_label']]
        assert imread(data['img_path']).shape == (64, 64, 3)

    # learnable signal: mean colour separates the classes
    def feats(ds):
        return ([imread(ds.get_data_info(i)['img_path']).mean((0, 1))
                 for i in range(len(ds))],
                [ds.get_data_info(i)['gt_label'] for i in range(len(ds))])

    assert _nearest_centroid_accuracy(*feats(train), *feats(test)) == 1.0


def test_make_imagenet_folder_custom_and_imagenet(tmp_path):
    from mmpretrain.datasets import CustomDataset, ImageNet
    info = make_imagenet_folder(
        str(tmp_path), num_classes=3, train_per_class=4, val_per_class=2)
    # CustomDataset without ann_file: classes from the sub-folders
    custom = CustomDataset(
        data_root=info['data_root'], data_prefix=info['train_prefix'])
    assert len(custom) == 12
    assert custom.CLASSES == info['classes']
    labels = [custom.get_data_info(i)['gt_label'] for i in range(12)]
    assert labels == [0] * 4 + [1] * 4 + [2] * 4
    for i in range(12):
        data = custom.get_data_info(i)
        assert data['img_path'].endswith('.JPEG')
        assert osp.basename(osp.dirname(data['img_path'])) == \
            custom.CLASSES[data['gt_label']]
    # ImageNet(split='val') picks up meta/val.txt
    val = ImageNet(
        data_root=info['data_root'],
        split='val',
        metainfo=dict(classes=info['classes']))
    assert val.ann_file == osp.join(info['data_root'], 'meta', 'val.txt')
    assert len(val) == 6
    assert sorted(val.get_data_info(i)['gt_label']
                  for i in range(6)) == [0, 0, 1, 1, 2, 2]
    assert all(
        osp.isfile(val.get_data_info(i)['img_path']) for i in range(6))


def test_make_coco_boxes_and_masks_come_back(tmp_path):
    import_or_skip('mmdet.datasets')
    from mmdet.datasets import CocoDataset
    info = make_coco(
        str(tmp_path), classes=('a', 'b'), num_train=3, num_val=2, size=64)
    with open(osp.join(info['data_root'], info['train_ann_file'])) as f:
        raw = json.load(f)
    pipeline = [
        dict(type='mmdet.LoadImageFromFile'),
        dict(type='mmdet.LoadAnnotations', with_bbox=True, with_mask=True)
    ]
    ds = CocoDataset(
        data_root=info['data_root'],
        ann_file=info['train_ann_file'],
        data_prefix=dict(img=info['train_img_prefix']),
        metainfo=dict(classes=info['classes']),
        pipeline=pipeline)
    assert len(ds) == 3
    assert ds.metainfo['classes'] == ('a', 'b')
    n_boxes = 0
    for i in range(len(ds)):
        data_info = ds.get_data_info(i)
        anns = [a for a in raw['annotations']
                if a['image_id'] == data_info['img_id']]
        # boxes come back as written, converted xywh -> xyxy
        expected = [[x, y, x + w, y + h] for x, y, w, h in
                    (a['bbox'] for a in anns)]
        assert [inst['bbox'] for inst in data_info['instances']] == expected
        assert [inst['bbox_label'] for inst in data_info['instances']] == [
            a['category_id'] - 1 for a in anns
        ]
        n_boxes += len(anns)
        results = ds[i]
        img = results['img'].astype(np.float64)
        masks = results['gt_masks'].to_ndarray()
        assert masks.shape == (len(anns), 64, 64)
        background = np.ones((64, 64), dtype=bool)
        for box, mask in zip(results['gt_bboxes'].tensor.numpy(), masks):
            x0, y0, x1, y1 = box.astype(int)
            # the polygon mask covers exactly the box's pixels
            expected_mask = np.zeros((64, 64), dtype=np.uint8)
            expected_mask[y0:y1, x0:x1] = 1
            np.testing.assert_array_equal(mask, expected_mask)
            # and the object is painted bright there, and only there
            assert img[y0:y1, x0:x1].min() > 100
            background[y0:y1, x0:x1] = False
        assert img[background].max() < 100
    assert n_boxes == info['num_boxes']['train'] == 6
    val = CocoDataset(
        data_root=info['data_root'],
        ann_file=info['val_ann_file'],
        data_prefix=dict(img=info['val_img_prefix']),
        metainfo=dict(classes=info['classes']),
        test_mode=True)
    assert len(val) == 2


def test_make_cityscapes_loads_with_mmseg(tmp_path):
    import_or_skip('mmseg.datasets')
    from mmseg.datasets import CityscapesDataset
    info = make_cityscapes(
        str(tmp_path), num_train=2, num_val=1, size=(64, 32), ignore_rows=2)
    pipeline = [
        dict(type='mmseg.LoadImageFromFile'),
        dict(type='mmseg.LoadAnnotations')
    ]
    train = CityscapesDataset(
        data_root=info['data_root'],
        data_prefix=info['train_data_prefix'],
        pipeline=pipeline)
    val = CityscapesDataset(
        data_root=info['data_root'],
        data_prefix=info['val_data_prefix'],
        pipeline=pipeline)
    assert len(train) == 2 and len(val) == 1
    assert len(train.metainfo['classes']) == 19
    palette = np.array(train.metainfo['palette'], dtype=np.float64)
    for i in range(2):
        results = train[i]
        seg = results['gt_seg_map']
        img = results['img'][..., ::-1].astype(np.float64)  # BGR -> RGB
        assert seg.shape == (32, 64) and img.shape == (32, 64, 3)
        assert (seg[-2:] == 255).all()
        assert (seg[:-2] < 19).all()
        # labels are constant on 8x8 cells
        cells = seg[:24].reshape(3, 8, 8, 8)
        assert (cells == cells[:, :1, :, :1]).all()
        # the image shows each label's palette colour
        for label in np.unique(seg[:-2]):
            mean = img[seg == label].mean(0)
            assert np.abs(mean - palette[label]).max() < 10


def test_make_fashion_mnist_loads_with_mmpretrain(tmp_path):
    from mmpretrain.datasets import FashionMNIST
    info = make_fashion_mnist(str(tmp_path), n_train=20, n_test=10)
    train = FashionMNIST(
        data_root=info['data_root'], split='train', download=False)
    test = FashionMNIST(
        data_root=info['data_root'],
        split='test',
        test_mode=True,
        download=False)
    assert len(train) == 20 and len(test) == 10
    assert [int(test.get_data_info(i)['gt_label'])
            for i in range(10)] == list(range(10))
    for i in range(20):
        data = train.get_data_info(i)
        c = i % 10
        assert int(data['gt_label']) == c
        assert data['img'].shape == (28, 28)
        # class c: bright bar on rows 2c+4..2c+7, columns 4..23
        assert (data['img'][2 * c + 4:2 * c + 8, 4:24] == 230).all()
        assert data['img'][:2 * c + 4].max() < 60


def test_write_idx_header_and_gzip(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(str(tmp_path / 'a.gz'), arr)
    with gzip.open(tmp_path / 'a.gz', 'rb') as f:
        data = f.read()
    assert data[:4] == bytes([0, 0, 8, 3])
    assert [int.from_bytes(data[4 + 4 * i:8 + 4 * i], 'big')
            for i in range(3)] == [2, 3, 4]
    assert data[16:] == bytes(range(24))
    with pytest.raises(ValueError, match='uint8'):
        write_idx(str(tmp_path / 'b'), np.zeros(3, dtype=np.float32))
    with pytest.raises(ValueError, match='dimensions'):
        write_idx(str(tmp_path / 'c'), np.zeros((1, 1, 1, 1), np.uint8))


def test_writers_are_deterministic(tmp_path):
    a = make_coco(str(tmp_path / 'a'), seed=3)
    b = make_coco(str(tmp_path / 'b'), seed=3)
    c = make_coco(str(tmp_path / 'c'), seed=4)

    def read(info):
        with open(osp.join(info['data_root'], info['train_ann_file'])) as f:
            return json.load(f)['annotations']

    assert read(a) == read(b)
    assert read(a) != read(c)
    assert filecmp.cmp(
        tmp_path / 'a' / 'train' / '000001.png',
        tmp_path / 'b' / 'train' / '000001.png',
        shallow=False)


def test_make_cityscapes_rejects_too_many_classes(tmp_path):
    with pytest.raises(ValueError, match='num_classes'):
        make_cityscapes(str(tmp_path), num_classes=20)
