"""Convert the aerial tree-crown images shipped in PyPI ``deepforest`` to COCO.

The ``deepforest`` wheel carries four real RGB aerial images (NEON sites) with
hand-drawn tree-crown boxes in Pascal-VOC XML, 951 boxes in all:

==========================================  ===========  =====
image                                       size (WxH)   boxes
==========================================  ===========  =====
2019_YELL_2_528000_4978000_image_crop2.png  2299 x 2472    574
2019_YELL_2_541000_4977000_image_crop.png   1249 x 1035    279
OSBS_029.tif                                 400 x 400      61
SOAP_061.png                                 400 x 400      37
==========================================  ===========  =====

This script reads them without importing ``deepforest`` (its data folder is
located with ``importlib.util.find_spec``, so ``pip install --no-deps
deepforest`` is enough) and writes a single-class (``tree``) COCO dataset::

    out/images/<stem>_x<X>_y<Y>.png
    out/annotations/instances_train.json
    out/annotations/instances_val.json
    out/annotations/instances_test.json     (with --test-residue)

Rules:

* Labels: every object becomes ``tree`` (SOAP_061's ``Alive``/``Dead`` are
  tree crowns too).
* Coordinates: the VOC ``xmin, ymin, xmax, ymax`` are read as deepforest
  reads them, i.e. as 0-based pixel-edge coordinates with width
  ``xmax - xmin``; COCO ``bbox = [x, y, w, h]`` in the tile's frame.
* Tiling: an image side ``L`` is cut into ``n = ceil(L / tile_size)``
  non-overlapping pieces of (nearly) equal length, the piece borders being
  ``round(i * L / n)`` for ``i = 0..n``: with ``tile_size=400`` a
  2299 x 2472 image gives 6 x 7 tiles of about 383 x 353 pixels. Images no
  larger than a tile are kept whole. Nothing is padded or overlapped, so no
  pixel appears in two tiles.
* Boxes: a box is clipped to the tile and kept if the clipped part holds at
  least ``min_visible`` (0.5) of the box's area inside the image, and is at
  least 1 pixel wide and high (mmdet's ``CocoDataset`` drops smaller ones).
* Split: tiles are listed in a fixed order (images sorted by XML name,
  tiles row-major) and every ``val_interval``-th tile (index % 5 == 4 by
  default) goes to ``val``; with ``--test-residue K`` every tile with
  index % 5 == K goes to ``test`` instead of ``train``. A crown cut by a
  tile border can have one part in a train tile and the other in a val
  (or test) tile.
* Tiles without boxes are kept (mmdet's ``filter_cfg=dict(filter_empty_gt=
  True)`` skips them in training).

Usage::

    pip install --no-deps deepforest
    python tools/dataset_converters/deepforest_to_coco.py [data/deepforest_coco]

Config::

    dataset = dict(type='CocoDataset', data_root='data/deepforest_coco',
                   metainfo=dict(classes=('tree', )),
                   ann_file='annotations/instances_train.json',
                   data_prefix=dict(img='images/'))
"""  # noqa: E501
import argparse
import importlib.util
import json
import math
import os
import os.path as osp
import sys
import xml.etree.ElementTree as ET
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

CLASSES = ('tree', )
Box = Tuple[float, float, float, float]  # xmin, ymin, xmax, ymax


def find_deepforest_data() -> str:
    """Return the ``data`` folder of the installed ``deepforest`` package.

    Uses ``importlib.util.find_spec`` on the top-level package, which locates
    it without executing its ``__init__`` (and so without its heavy
    dependencies).

    Raises:
        FileNotFoundError: if deepforest is not installed.
    """
    spec = importlib.util.find_spec('deepforest')
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            'The PyPI package `deepforest` is not installed. Install its '
            'files (no dependencies needed): '
            '`pip install --no-deps deepforest`')
    return osp.join(list(spec.submodule_search_locations)[0], 'data')


def read_voc(xml_path: str) -> Tuple[str, int, int, List[Box]]:
    """Read a Pascal-VOC XML file.

    Returns:
        tuple: (image file name, width, height, list of boxes
        ``(xmin, ymin, xmax, ymax)``).
    """
    root = ET.parse(xml_path).getroot()
    filename = root.findtext('filename')
    size = root.find('size')
    width = int(size.findtext('width'))
    height = int(size.findtext('height'))
    boxes = []
    for obj in root.iter('object'):
        bb = obj.find('bndbox')
        boxes.append(
            tuple(
                float(bb.findtext(k))
                for k in ('xmin', 'ymin', 'xmax', 'ymax')))
    return filename, width, height, boxes


def tile_edges(length: int, tile_size: int) -> List[Tuple[int, int]]:
    """Split ``[0, length)`` into ``ceil(length / tile_size)`` non-overlapping
    intervals ``(start, end)`` of (nearly) equal length."""
    n = max(1, math.ceil(length / tile_size))
    edges = [round(i * length / n) for i in range(n + 1)]
    return list(zip(edges[:-1], edges[1:]))


def clip_boxes(boxes: Sequence[Box], window: Box, image_size: Tuple[int, int],
               min_visible: float) -> List[Box]:
    """Clip boxes to a window and express them in its frame.

    Args:
        boxes: boxes ``(xmin, ymin, xmax, ymax)`` in image coordinates.
        window: the tile ``(x0, y0, x1, y1)`` in image coordinates.
        image_size: (width, height) of the image.
        min_visible: keep a box if ``area(box & window) >= min_visible *
            area(box & image)``.

    Returns:
        list: the kept boxes, clipped, relative to the window's top-left.
    """
    x0, y0, x1, y1 = window
    width, height = image_size
    kept = []
    for bx0, by0, bx1, by1 in boxes:
        # the part of the box inside the image (annotations may overhang)
        ix0, iy0 = max(bx0, 0), max(by0, 0)
        ix1, iy1 = min(bx1, width), min(by1, height)
        full = max(ix1 - ix0, 0) * max(iy1 - iy0, 0)
        cx0, cy0 = max(ix0, x0), max(iy0, y0)
        cx1, cy1 = min(ix1, x1), min(iy1, y1)
        w, h = cx1 - cx0, cy1 - cy0
        if full <= 0 or w < 1 or h < 1:
            continue
        if w * h < min_visible * full:
            continue
        kept.append((cx0 - x0, cy0 - y0, cx1 - x0, cy1 - y0))
    return kept


def convert(src: str,
            out: str,
            tile_size: int = 400,
            min_visible: float = 0.5,
            val_interval: int = 5,
            test_residue: Optional[int] = None) -> Dict[str, Dict[str, int]]:
    """Tile the deepforest images and write the COCO dataset.

    ``test_residue``: the tiles with ``index % val_interval == test_residue``
    form a ``test`` split (taken from ``train``); None: no test split.

    Returns:
        dict: per split, ``{'images': n, 'boxes': m}``.
    """
    if not 0 < min_visible <= 1:
        raise ValueError(f'min_visible must be in (0, 1], got {min_visible}')
    if val_interval < 2:
        raise ValueError(f'val_interval must be >= 2, got {val_interval}')
    if test_residue is not None and not 0 <= test_residue < val_interval - 1:
        raise ValueError(
            f'test_residue must be in 0..{val_interval - 2} '
            f'({val_interval - 1} is the val tiles), got {test_residue}')
    xmls = sorted(f for f in os.listdir(src) if f.endswith('.xml'))
    if not xmls:
        raise FileNotFoundError(f'No Pascal-VOC .xml file in {src}')
    os.makedirs(osp.join(out, 'images'), exist_ok=True)
    os.makedirs(osp.join(out, 'annotations'), exist_ok=True)
    coco = {
        split: dict(images=[], annotations=[])
        for split in ('train', 'val') +
        (('test', ) if test_residue is not None else ())
    }
    tile_index = 0
    ann_id = 1
    for xml in xmls:
        filename, width, height, boxes = read_voc(osp.join(src, xml))
        if not osp.isfile(osp.join(src, filename)):
            print(f'warning: {xml} names {filename}, which is missing; '
                  'skipped', file=sys.stderr)
            continue
        img = Image.open(osp.join(src, filename)).convert('RGB')
        if img.size != (width, height):
            raise ValueError(f'{filename} is {img.size}, the XML says '
                             f'{(width, height)}')
        pixels = np.asarray(img)
        stem = osp.splitext(filename)[0]
        for ty, ty1 in tile_edges(height, tile_size):
            for tx, tx1 in tile_edges(width, tile_size):
                tw, th = tx1 - tx, ty1 - ty
                window = (tx, ty, tx1, ty1)
                residue = tile_index % val_interval
                split = ('val' if residue == val_interval - 1 else
                         'test' if residue == test_residue else 'train')
                tile_index += 1
                img_id = tile_index
                name = f'{stem}_x{tx}_y{ty}.png'
                Image.fromarray(pixels[ty:ty + th, tx:tx + tw]).save(
                    osp.join(out, 'images', name))
                coco[split]['images'].append(
                    dict(id=img_id, file_name=name, width=tw, height=th))
                for x0, y0, x1, y1 in clip_boxes(boxes, window,
                                                 (width, height),
                                                 min_visible):
                    coco[split]['annotations'].append(
                        dict(
                            id=ann_id,
                            image_id=img_id,
                            category_id=1,
                            bbox=[x0, y0, x1 - x0, y1 - y0],
                            area=(x1 - x0) * (y1 - y0),
                            iscrowd=0))
                    ann_id += 1
    stats = {}
    for split, data in coco.items():
        data['categories'] = [
            dict(id=i + 1, name=n) for i, n in enumerate(CLASSES)
        ]
        data['info'] = dict(
            description=f'deepforest sample images, {split} tiles of '
            f'{tile_size}px (mmkd tools/dataset_converters/'
            'deepforest_to_coco.py)')
        with open(
                osp.join(out, 'annotations', f'instances_{split}.json'),
                'w') as f:
            json.dump(data, f)
        stats[split] = dict(
            images=len(data['images']), boxes=len(data['annotations']))
    return stats


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Tile the deepforest sample images into a COCO dataset')
    parser.add_argument(
        'out', nargs='?', default='data/deepforest_coco',
        help='output folder')
    parser.add_argument(
        '--src', default=None,
        help='folder with the images and VOC XML files '
        '(default: the data folder of the installed deepforest package)')
    parser.add_argument('--tile-size', type=int, default=400)
    parser.add_argument('--min-visible', type=float, default=0.5)
    parser.add_argument('--val-interval', type=int, default=5)
    parser.add_argument(
        '--test-residue', type=int, default=None,
        help='also write a test split: the tiles with index %% '
        'val_interval == TEST_RESIDUE (default: no test split)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        src = args.src or find_deepforest_data()
        stats = convert(src, args.out, args.tile_size, args.min_visible,
                        args.val_interval, args.test_residue)
    except (FileNotFoundError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    for split, s in stats.items():
        print(f"{split}: {s['images']} images, {s['boxes']} boxes")
    print(f'COCO dataset written to {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
