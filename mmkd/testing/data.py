"""Writers of tiny synthetic datasets in the real on-disk formats.

Each ``make_*`` function writes a few small images (32-64 px) under ``root``
in exactly the layout that the corresponding OpenMMLab dataset class reads
(mmpretrain 1.2.0 ``CUB`` / ``CustomDataset`` / ``ImageNet`` /
``FashionMNIST``, mmdet 3.3.0 ``CocoDataset``, mmseg 1.2.2
``CityscapesDataset``) and returns a dict with what a config needs (data
root, annotation files, prefixes, class names, sample counts).

The images carry a learnable signal so that a few training steps can move a
loss: a class-dependent colour and stripe pattern for classification, bright
class-coloured rectangles for detection, palette-coloured label regions for
segmentation. Everything is deterministic given ``seed``.
"""
import gzip
import json
import os
import os.path as osp
from typing import Dict, List, Sequence, Tuple

import numpy as np
from PIL import Image

__all__ = [
    'write_idx', 'make_cub', 'make_imagenet_folder', 'make_coco',
    'make_cityscapes', 'make_fashion_mnist'
]

# IDX type codes (first 3 bytes of the magic are 0, 0, type).
_IDX_TYPES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09}

# Cityscapes palette of the 19 train ids (as in mmseg's CityscapesDataset).
_CITYSCAPES_PALETTE = np.array(
    [[128, 64, 128], [244, 35, 232], [70, 70, 70], [102, 102, 156],
     [190, 153, 153], [153, 153, 153], [250, 170, 30], [220, 220, 0],
     [107, 142, 35], [152, 251, 152], [70, 130, 180], [220, 20, 60],
     [255, 0, 0], [0, 0, 142], [0, 0, 70], [0, 60, 100], [0, 80, 100],
     [0, 0, 230], [119, 11, 32]],
    dtype=np.uint8)


def _class_colour(label: int, num_classes: int) -> np.ndarray:
    """A distinct RGB colour per class (hue evenly spread), shape (3,)."""
    hue = label / max(num_classes, 1)
    # HSV -> RGB with s = v = 1, written out to avoid extra dependencies.
    h6 = hue * 6.0
    x = 1 - abs(h6 % 2 - 1)
    sector = int(h6) % 6
    rgb = [(1, x, 0), (x, 1, 0), (0, 1, x), (0, x, 1), (x, 0, 1),
           (1, 0, x)][sector]
    return np.array([40 + 200 * c for c in rgb], dtype=np.float32)


def _class_image(rng: np.random.Generator, label: int, num_classes: int,
                 size: int) -> np.ndarray:
    """An image whose colour and stripe orientation depend on the class.

    Returns:
        np.ndarray: uint8 array of shape (size, size, 3), RGB.
    """
    colour = _class_colour(label, num_classes)
    yy, xx = np.mgrid[0:size, 0:size]
    # Stripes: horizontal, vertical or diagonal depending on the class, with
    # a random phase so that images of one class are not identical.
    period = 8
    phase = rng.integers(period)
    direction = label % 3
    coord = (yy, xx, xx + yy)[direction]
    stripes = (((coord + phase) // (period // 2)) % 2).astype(np.float32)
    img = colour[None, None, :] * (0.6 + 0.4 * stripes[..., None])
    img += rng.normal(0, 10, size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _save_rgb(path: str, array: np.ndarray, **kwargs) -> None:
    """Save an (H, W, 3) uint8 array as an RGB image file."""
    assert array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] == 3
    os.makedirs(osp.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)


def write_idx(path: str, array: np.ndarray) -> None:
    """Write an array as an IDX ("SN3 Pascal Vincent") file.

    The format of (Fashion-)MNIST: magic ``0x0000TTNN`` (``TT`` the type
    code, ``NN`` the number of dimensions), one big-endian uint32 per
    dimension, then the raw data. The file is gzip-compressed if ``path``
    ends with ``.gz``.

    Args:
        path (str): Output file.
        array (np.ndarray): uint8 or int8 array, 1 to 3 dimensions.
    """
    array = np.ascontiguousarray(array)
    if array.dtype not in _IDX_TYPES:
        raise ValueError(f'write_idx supports uint8/int8, got {array.dtype}')
    if not 1 <= array.ndim <= 3:
        raise ValueError(f'write_idx needs 1-3 dimensions, got {array.ndim}')
    header = bytes([0, 0, _IDX_TYPES[array.dtype], array.ndim])
    header += b''.join(int(d).to_bytes(4, 'big') for d in array.shape)
    data = header + array.tobytes()
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    opener = gzip.open if path.endswith('.gz') else open
    with opener(path, 'wb') as f:
        f.write(data)


def make_cub(root: str,
             num_classes: int = 3,
             per_class: int = 4,
             size: int = 64,
             seed: int = 0) -> Dict:
    """Write a tiny CUB-200-2011 dataset as mmpretrain's ``CUB`` reads it.

    Layout (all indices 1-based, as in the real dataset)::

        root/images.txt              "<img_id> <class_dir>/<file>.jpg"
        root/image_class_labels.txt  "<img_id> <class_id>"
        root/train_test_split.txt    "<img_id> <1 train | 0 test>"
        root/classes.txt             "<class_id> <class_dir>"
        root/images/<class_dir>/<file>.jpg

    ``CUB`` reads the first three text files (``classes.txt`` is written for
    completeness, it is not read). In each class the first
    ``ceil(per_class / 2)`` images are training images, the rest test.

    Returns:
        dict: ``data_root``, ``classes`` (pass them as
        ``metainfo=dict(classes=...)``, CUB's default has 200),
        ``num_train``, ``num_test``, ``train_labels`` and ``test_labels``
        (0-based labels in the order the dataset lists them).
    """
    rng = np.random.default_rng(seed)
    classes = [f'{c + 1:03d}.Synthetic_bird_{c}' for c in range(num_classes)]
    n_train_per_class = (per_class + 1) // 2
    images, labels, split = [], [], []
    train_labels, test_labels = [], []
    for c, cls in enumerate(classes):
        for j in range(per_class):
            rel = f'{cls}/Synthetic_bird_{c}_{j:04d}.jpg'
            img = _class_image(rng, c, num_classes, size)
            _save_rgb(osp.join(root, 'images', rel), img, quality=95)
            is_train = j < n_train_per_class
            images.append(rel)
            labels.append(c + 1)
            split.append(1 if is_train else 0)
            (train_labels if is_train else test_labels).append(c)

    def _write(name: str, items: Sequence) -> None:
        with open(osp.join(root, name), 'w') as f:
            for i, item in enumerate(items):
                f.write(f'{i + 1} {item}\n')

    _write('images.txt', images)
    _write('image_class_labels.txt', labels)
    _write('train_test_split.txt', split)
    _write('classes.txt', classes)
    return dict(
        data_root=root,
        classes=tuple(classes),
        num_train=len(train_labels),
        num_test=len(test_labels),
        train_labels=train_labels,
        test_labels=test_labels)


def make_imagenet_folder(root: str,
                         num_classes: int = 3,
                         train_per_class: int = 4,
                         val_per_class: int = 2,
                         size: int = 32,
                         seed: int = 0) -> Dict:
    """Write a tiny ImageNet-style folder dataset.

    Layout::

        root/train/<wnid>/<wnid>_<i>.JPEG
        root/val/<wnid>/<wnid>_val_<i>.JPEG
        root/meta/train.txt   "<wnid>/<file>.JPEG <label>"
        root/meta/val.txt

    Readable by mmpretrain's ``CustomDataset`` without an annotation file
    (classes are the sorted sub-folder names, ``data_prefix='train'``) and by
    ``ImageNet(split='train'|'val')``, which picks ``meta/<split>.txt`` (pass
    ``metainfo=dict(classes=...)``: ImageNet's default has 1000 classes).
    Unlike the real ImageNet, ``val/`` also has one folder per class.

    Returns:
        dict: ``data_root``, ``classes``, ``train_prefix``, ``val_prefix``,
        ``train_ann_file``, ``val_ann_file``, ``num_train``, ``num_val``.
    """
    rng = np.random.default_rng(seed)
    classes = [f'n{c:08d}' for c in range(num_classes)]
    meta: Dict[str, List[str]] = {'train': [], 'val': []}
    for split, n in (('train', train_per_class), ('val', val_per_class)):
        tag = '' if split == 'train' else 'val_'
        for c, wnid in enumerate(classes):
            for i in range(n):
                rel = f'{wnid}/{wnid}_{tag}{i}.JPEG'
                img = _class_image(rng, c, num_classes, size)
                _save_rgb(
                    osp.join(root, split, rel), img, format='JPEG',
                    quality=95)
                meta[split].append(f'{rel} {c}')
    os.makedirs(osp.join(root, 'meta'), exist_ok=True)
    for split, lines in meta.items():
        with open(osp.join(root, 'meta', f'{split}.txt'), 'w') as f:
            f.write('\n'.join(lines) + '\n')
    return dict(
        data_root=root,
        classes=tuple(classes),
        train_prefix='train',
        val_prefix='val',
        train_ann_file='meta/train.txt',
        val_ann_file='meta/val.txt',
        num_train=num_classes * train_per_class,
        num_val=num_classes * val_per_class)


def _place_boxes(rng: np.random.Generator, size: int, n: int,
                 min_side: int, max_side: int,
                 max_tries: int = 100) -> List[Tuple[int, int, int, int]]:
    """Sample up to ``n`` non-overlapping integer boxes (x, y, w, h)."""
    boxes: List[Tuple[int, int, int, int]] = []
    for _ in range(max_tries):
        if len(boxes) == n:
            break
        w, h = rng.integers(min_side, max_side + 1, size=2)
        x = int(rng.integers(0, size - w + 1))
        y = int(rng.integers(0, size - h + 1))
        # one pixel of margin so that masks of two objects never touch
        if all(x + w + 1 <= bx or bx + bw + 1 <= x or y + h + 1 <= by
               or by + bh + 1 <= y for bx, by, bw, bh in boxes):
            boxes.append((x, y, int(w), int(h)))
    return boxes


def make_coco(root: str,
              classes: Sequence[str] = ('square', 'blob'),
              num_train: int = 3,
              num_val: int = 2,
              boxes_per_image: int = 2,
              size: int = 64,
              with_masks: bool = True,
              seed: int = 0) -> Dict:
    """Write a tiny COCO-format detection / instance segmentation dataset.

    Layout::

        root/annotations/instances_{train,val}.json
        root/{train,val}/<id>.png

    Each object is a filled rectangle in a bright class colour on a dark
    noisy background (object ``k`` of image ``i`` has class
    ``(i + k) % num_classes``, ``i`` counting from 1 over both splits); its
    ``bbox`` is ``[x, y, w, h]`` covering exactly the
    painted pixels ``[x, x + w) x [y, y + h)``, its ``segmentation`` (if
    ``with_masks``) the polygon of that rectangle, ``area = w * h``.
    Category ids start at 1. Readable by mmdet's ``CocoDataset`` with
    ``metainfo=dict(classes=classes)``, ``ann_file=<returned ann file>``,
    ``data_prefix=dict(img=<returned prefix>)``.

    Returns:
        dict: ``data_root``, ``classes``, ``train_ann_file``,
        ``val_ann_file``, ``train_img_prefix``, ``val_img_prefix``,
        ``num_train``, ``num_val``, ``num_boxes`` (per split).
    """
    rng = np.random.default_rng(seed)
    num_classes = len(classes)
    categories = [dict(id=i + 1, name=n) for i, n in enumerate(classes)]
    out = dict(data_root=root, classes=tuple(classes), num_boxes={})
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    ann_id = 1
    img_id = 1
    min_side = max(4, size // 8)
    max_side = max(min_side, size // 3)
    for split, n_img in (('train', num_train), ('val', num_val)):
        images, annotations = [], []
        for _ in range(n_img):
            img = rng.normal(30, 8, size=(size, size, 3))
            boxes = _place_boxes(rng, size, boxes_per_image, min_side,
                                 max_side)
            for k, (x, y, w, h) in enumerate(boxes):
                label = (img_id + k) % num_classes
                colour = _class_colour(label, num_classes) * 0.5 + 120
                img[y:y + h, x:x + w] = colour
                ann = dict(
                    id=ann_id,
                    image_id=img_id,
                    category_id=label + 1,
                    bbox=[float(x), float(y),
                          float(w), float(h)],
                    area=float(w * h),
                    iscrowd=0)
                if with_masks:
                    ann['segmentation'] = [[
                        float(x), float(y), float(x + w), float(y),
                        float(x + w), float(y + h), float(x), float(y + h)
                    ]]
                annotations.append(ann)
                ann_id += 1
            file_name = f'{img_id:06d}.png'
            _save_rgb(
                osp.join(root, split, file_name),
                np.clip(img, 0, 255).astype(np.uint8))
            images.append(
                dict(id=img_id, file_name=file_name, width=size,
                     height=size))
            img_id += 1
        ann_file = osp.join('annotations', f'instances_{split}.json')
        with open(osp.join(root, ann_file), 'w') as f:
            json.dump(
                dict(
                    info=dict(description=f'mmkd synthetic COCO {split}'),
                    images=images,
                    annotations=annotations,
                    categories=categories), f)
        out[f'{split}_ann_file'] = ann_file
        out[f'{split}_img_prefix'] = f'{split}/'
        out[f'num_{split}'] = n_img
        out['num_boxes'][split] = len(annotations)
    return out


def make_cityscapes(root: str,
                    num_train: int = 2,
                    num_val: int = 1,
                    size: Tuple[int, int] = (64, 32),
                    num_classes: int = 19,
                    ignore_rows: int = 2,
                    city: str = 'synthcity',
                    seed: int = 0) -> Dict:
    """Write a tiny Cityscapes dataset as mmseg's ``CityscapesDataset`` reads
    it.

    Layout::

        root/leftImg8bit/{train,val}/<city>/<city>_000000_<i>_leftImg8bit.png
        root/gtFine/{train,val}/<city>/<city>_000000_<i>_gtFine_labelTrainIds.png

    Label maps hold train ids in ``[0, num_classes)`` laid out as a grid of
    8x8-pixel cells (one random class per cell), and 255 (ignored) in the
    bottom ``ignore_rows`` rows (like the ego vehicle). Each pixel of the
    image is its class's Cityscapes palette colour plus noise.

    Args:
        size (tuple): (width, height) of the images.

    Returns:
        dict: ``data_root``, ``num_train``, ``num_val``, and for each split a
        ``data_prefix`` dict, e.g. ``train_data_prefix=dict(img_path=
        'leftImg8bit/train', seg_map_path='gtFine/train')``.
    """  # noqa: E501
    if not 1 <= num_classes <= 19:
        raise ValueError(f'num_classes must be in [1, 19], got {num_classes}')
    rng = np.random.default_rng(seed)
    width, height = size
    cell = 8
    out = dict(data_root=root, num_train=num_train, num_val=num_val)
    for split, n in (('train', num_train), ('val', num_val)):
        for i in range(n):
            grid = rng.integers(
                num_classes, size=(-(-height // cell), -(-width // cell)))
            label = np.kron(grid, np.ones((cell, cell), dtype=np.int64))
            label = label[:height, :width].astype(np.uint8)
            if ignore_rows:
                label[height - ignore_rows:] = 255
            img = _CITYSCAPES_PALETTE[np.minimum(label, 18)].astype(
                np.float32)
            img[label == 255] = 0
            img += rng.normal(0, 8, size=img.shape)
            stem = f'{city}_000000_{i:06d}'
            _save_rgb(
                osp.join(root, 'leftImg8bit', split, city,
                         f'{stem}_leftImg8bit.png'),
                np.clip(img, 0, 255).astype(np.uint8))
            seg_path = osp.join(root, 'gtFine', split, city,
                                f'{stem}_gtFine_labelTrainIds.png')
            os.makedirs(osp.dirname(seg_path), exist_ok=True)
            Image.fromarray(label).save(seg_path)
        out[f'{split}_data_prefix'] = dict(
            img_path=f'leftImg8bit/{split}', seg_map_path=f'gtFine/{split}')
    return out


def make_fashion_mnist(root: str,
                       n_train: int = 20,
                       n_test: int = 10,
                       seed: int = 0,
                       gz: bool = False) -> Dict:
    """Write tiny Fashion-MNIST IDX files.

    Writes ``{train,t10k}-images-idx3-ubyte`` (uint8, N x 28 x 28) and
    ``{train,t10k}-labels-idx1-ubyte`` (uint8, N) into ``root``, unpacked as
    mmpretrain's ``FashionMNIST(data_root=root, download=False)`` reads them
    (with ``gz=True`` the ``.gz`` files instead, as the Debian package ships
    them). Labels cycle through 0-9; class ``c`` has a bright horizontal bar
    at rows ``2c + 4 .. 2c + 7`` over a noisy background.

    Returns:
        dict: ``data_root``, ``n_train``, ``n_test``, ``train_labels``,
        ``test_labels``, ``train_images``, ``test_images`` (np.ndarray) and
        ``files`` (the 4 paths).
    """
    rng = np.random.default_rng(seed)
    out = dict(data_root=root, n_train=n_train, n_test=n_test, files=[])
    suffix = '.gz' if gz else ''
    for prefix, n in (('train', n_train), ('t10k', n_test)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        imgs = rng.integers(0, 60, size=(n, 28, 28)).astype(np.uint8)
        for k, c in enumerate(labels):
            imgs[k, 2 * c + 4:2 * c + 8, 4:24] = 230
        img_file = osp.join(root, f'{prefix}-images-idx3-ubyte{suffix}')
        lbl_file = osp.join(root, f'{prefix}-labels-idx1-ubyte{suffix}')
        write_idx(img_file, imgs)
        write_idx(lbl_file, labels)
        out['files'] += [img_file, lbl_file]
        key = 'train' if prefix == 'train' else 'test'
        out[f'{key}_labels'] = labels
        out[f'{key}_images'] = imgs
    return out
