"""Convert the nuclei image shipped in PyPI ``stardist`` to an mmseg dataset.

The ``stardist`` wheel carries ``stardist/data/images/img2d.tif`` (a real
512x512 fluorescence microscopy image from the 2018 Kaggle Data Science
Bowl, uint16 with values 0-235) and ``mask2d.tif`` (its instance mask, 125
nuclei). This script reads them with ``tifffile`` without importing
``stardist`` (``pip install --no-deps stardist tifffile`` is enough) and
writes a 2-class semantic segmentation dataset::

    out/img_dir/{train,val[,test]}/img2d_r<row>_c<col>.png   3-channel uint8
    out/ann_dir/{train,val[,test]}/img2d_r<row>_c<col>.png   1-channel, 0/1

Rules:

* Labels: ``0`` background, ``1`` nucleus (every instance id > 0).
* Image: converted to uint8 (cast as is when all values are in 0-255, as
  here; otherwise rescaled linearly from [min, max] to [0, 255]) and the
  single grey channel repeated three times, so that the usual RGB
  pipelines and 3-channel backbones apply unchanged.
* Tiling: non-overlapping ``tile_size`` x ``tile_size`` tiles (128 by
  default: a 4 x 4 grid); the image side must be a multiple of it.
* Split: the tile in grid row ``r``, column ``c`` goes to ``val`` when
  ``(r + c) % val_interval == 0`` (one tile per grid row and column with the
  defaults: 4 val and 12 train tiles), to ``train`` otherwise. With
  ``--test-offset K``, the tiles with ``(r + c) % val_interval == K`` go to
  ``test`` instead of ``train`` (``--test-offset 2``: 4 val, 4 test and 8
  train tiles, one val and one test tile per grid row and column).

Usage::

    pip install --no-deps stardist tifffile
    python tools/dataset_converters/stardist_to_mmseg.py [data/stardist_nuclei]
    python tools/dataset_converters/stardist_to_mmseg.py \
        data/stardist_nuclei_test --test-offset 2

Config::

    dataset = dict(type='BaseSegDataset', data_root='data/stardist_nuclei',
                   metainfo=dict(classes=('background', 'nucleus'),
                                 palette=[[0, 0, 0], [255, 255, 255]]),
                   img_suffix='.png', seg_map_suffix='.png',
                   data_prefix=dict(img_path='img_dir/train',
                                    seg_map_path='ann_dir/train'))
"""
import argparse
import importlib.util
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Tuple

import numpy as np
from PIL import Image

CLASSES = ('background', 'nucleus')
PALETTE = [[0, 0, 0], [255, 255, 255]]


def find_stardist_images() -> str:
    """Return the ``data/images`` folder of the installed ``stardist``.

    ``importlib.util.find_spec`` on the top-level package locates it without
    running its ``__init__`` (which would import TensorFlow).

    Raises:
        FileNotFoundError: if stardist is not installed.
    """
    spec = importlib.util.find_spec('stardist')
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            'The PyPI package `stardist` is not installed. Install its files '
            '(no dependencies needed): `pip install --no-deps stardist '
            'tifffile`')
    return osp.join(list(spec.submodule_search_locations)[0], 'data',
                    'images')


def read_tif(path: str) -> np.ndarray:
    try:
        import tifffile
    except ImportError as e:
        raise FileNotFoundError(
            'Reading the .tif files needs `tifffile`: '
            '`pip install tifffile` (see requirements/data.txt)') from e
    return tifffile.imread(path)


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Cast to uint8; rescale [min, max] to [0, 255] if out of range."""
    if img.min() >= 0 and img.max() <= 255:
        return img.astype(np.uint8)
    img = img.astype(np.float64)
    lo, hi = img.min(), img.max()
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    return np.round((img - lo) * scale).astype(np.uint8)


def tile_grid(height: int, width: int,
              tile_size: int) -> List[Tuple[int, int, int, int]]:
    """Row-major list of tiles ``(row, col, y0, x0)``."""
    if height % tile_size or width % tile_size:
        raise ValueError(f'image size {height}x{width} is not a multiple of '
                         f'tile_size={tile_size}')
    return [(r, c, r * tile_size, c * tile_size)
            for r in range(height // tile_size)
            for c in range(width // tile_size)]


def convert(img: np.ndarray,
            instances: np.ndarray,
            out: str,
            tile_size: int = 128,
            val_interval: int = 4,
            stem: str = 'img2d',
            test_offset: Optional[int] = None) -> Dict[str, int]:
    """Write the tiles of one image and its instance mask.

    Args:
        img (np.ndarray): (H, W) grey image.
        instances (np.ndarray): (H, W) instance ids, 0 = background.
        test_offset (int, optional): tiles with ``(r + c) % val_interval ==
            test_offset`` form a ``test`` split; None: no test split.

    Returns:
        dict: number of tiles per split.
    """
    if img.ndim != 2 or img.shape != instances.shape:
        raise ValueError(f'expected a 2D image and a mask of the same shape, '
                         f'got {img.shape} and {instances.shape}')
    if val_interval < 2:
        raise ValueError(f'val_interval must be >= 2, got {val_interval}')
    if test_offset is not None and not 0 < test_offset < val_interval:
        raise ValueError(f'test_offset must be in 1..{val_interval - 1} '
                         f'(0 is the val tiles), got {test_offset}')
    rgb = np.repeat(to_uint8(img)[..., None], 3, axis=2)
    semantic = (instances > 0).astype(np.uint8)
    counts = {'train': 0, 'val': 0}
    if test_offset is not None:
        counts['test'] = 0
    for split in counts:
        os.makedirs(osp.join(out, 'img_dir', split), exist_ok=True)
        os.makedirs(osp.join(out, 'ann_dir', split), exist_ok=True)
    for r, c, y0, x0 in tile_grid(*img.shape, tile_size):
        residue = (r + c) % val_interval
        split = ('val' if residue == 0 else
                 'test' if residue == test_offset else 'train')
        name = f'{stem}_r{r}_c{c}.png'
        window = (slice(y0, y0 + tile_size), slice(x0, x0 + tile_size))
        Image.fromarray(rgb[window]).save(
            osp.join(out, 'img_dir', split, name))
        Image.fromarray(semantic[window]).save(
            osp.join(out, 'ann_dir', split, name))
        counts[split] += 1
    return counts


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Tile the stardist nuclei image into an mmseg dataset')
    parser.add_argument(
        'out', nargs='?', default='data/stardist_nuclei',
        help='output folder')
    parser.add_argument(
        '--src', default=None,
        help='folder with img2d.tif and mask2d.tif (default: the data/images '
        'folder of the installed stardist package)')
    parser.add_argument('--tile-size', type=int, default=128)
    parser.add_argument('--val-interval', type=int, default=4)
    parser.add_argument(
        '--test-offset', type=int, default=None,
        help='also write a test split: the tiles with (row + col) %% '
        'val_interval == TEST_OFFSET (default: no test split)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        src = args.src or find_stardist_images()
        img = read_tif(osp.join(src, 'img2d.tif'))
        mask = read_tif(osp.join(src, 'mask2d.tif'))
        counts = convert(img, mask, args.out, args.tile_size,
                         args.val_interval, test_offset=args.test_offset)
    except (FileNotFoundError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    n_inst = len(np.unique(mask)) - int((mask == 0).any())
    print(f'{img.shape[0]}x{img.shape[1]} image, {n_inst} nuclei, '
          f'{(mask > 0).mean():.1%} nucleus pixels')
    for split, n in counts.items():
        print(f'{split}: {n} tiles of {args.tile_size}x{args.tile_size}')
    print(f'mmseg dataset written to {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
