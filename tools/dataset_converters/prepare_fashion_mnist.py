"""Unpack the Debian package's Fashion-MNIST into mmpretrain's layout.

The Debian package ``dataset-fashion-mnist`` ships the complete dataset
(60,000 training and 10,000 test images, 28x28, 10 classes) as the four
gzip-compressed IDX files of the original release::

    /usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz

mmpretrain 1.2.0's ``FashionMNIST`` looks for the *unpacked* files (the names
without ``.gz``) in its ``data_root`` and tries to download them otherwise.
This script installs nothing: it gunzips the four files into the data root
(default ``data/fashion_mnist``) and checks their IDX headers.

Usage::

    apt-get install -y dataset-fashion-mnist   # once, as root
    python tools/dataset_converters/prepare_fashion_mnist.py [data/fashion_mnist]
"""  # noqa: E501
import argparse
import gzip
import os
import os.path as osp
import shutil
import sys
from typing import List, Optional, Tuple

DEFAULT_SRC = '/usr/share/datasets/fashion-mnist'
APT_COMMAND = 'apt-get install -y dataset-fashion-mnist'

# (file name without .gz, IDX magic number: uint8 data, 3 or 1 dimensions)
FILES = [
    ('train-images-idx3-ubyte', 0x0803),
    ('train-labels-idx1-ubyte', 0x0801),
    ('t10k-images-idx3-ubyte', 0x0803),
    ('t10k-labels-idx1-ubyte', 0x0801),
]


def read_idx_header(path: str) -> Tuple[int, List[int]]:
    """Return (magic, shape) of an unpacked IDX file."""
    with open(path, 'rb') as f:
        magic = int.from_bytes(f.read(4), 'big')
        ndim = magic & 0xFF
        shape = [int.from_bytes(f.read(4), 'big') for _ in range(ndim)]
    return magic, shape


def prepare(src: str, out: str) -> dict:
    """Gunzip the four IDX files from ``src`` into ``out`` and check them.

    Returns:
        dict: number of samples per split, ``{'train': N, 'test': M}``.

    Raises:
        FileNotFoundError: if one of the ``.gz`` files is missing.
        ValueError: if a file is not the expected IDX file or the image and
            label counts of a split differ.
    """
    missing = [
        osp.join(src, name + '.gz') for name, _ in FILES
        if not osp.isfile(osp.join(src, name + '.gz'))
    ]
    if missing:
        raise FileNotFoundError(
            'Fashion-MNIST files not found: ' + ', '.join(missing) +
            f'. Install the Debian package first: `{APT_COMMAND}`')
    os.makedirs(out, exist_ok=True)
    shapes = {}
    for name, magic in FILES:
        dst = osp.join(out, name)
        tmp = dst + '.tmp'
        with gzip.open(osp.join(src, name + '.gz'), 'rb') as fin, \
                open(tmp, 'wb') as fout:
            shutil.copyfileobj(fin, fout)
        got_magic, shape = read_idx_header(tmp)
        expected_ndim = 3 if 'images' in name else 1
        if got_magic != magic or len(shape) != expected_ndim or (
                expected_ndim == 3 and shape[1:] != [28, 28]):
            os.remove(tmp)
            raise ValueError(
                f'{name}.gz is not a Fashion-MNIST IDX file (magic '
                f'{got_magic:#06x}, shape {shape})')
        os.replace(tmp, dst)
        shapes[name] = shape
    counts = {}
    for split, prefix in (('train', 'train'), ('test', 't10k')):
        n_img = shapes[f'{prefix}-images-idx3-ubyte'][0]
        n_lbl = shapes[f'{prefix}-labels-idx1-ubyte'][0]
        if n_img != n_lbl:
            raise ValueError(f'{split}: {n_img} images but {n_lbl} labels')
        counts[split] = n_img
    return counts


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Unpack Fashion-MNIST from the Debian package '
        '`dataset-fashion-mnist` into the layout of mmpretrain FashionMNIST')
    parser.add_argument(
        'data_root',
        nargs='?',
        default='data/fashion_mnist',
        help='output folder (the `data_root` of the dataset config)')
    parser.add_argument(
        '--src',
        default=DEFAULT_SRC,
        help='folder holding the four *-ubyte.gz files')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        counts = prepare(args.src, args.data_root)
    except FileNotFoundError as e:
        print(e, file=sys.stderr)
        print(
            f'Run (as root): apt-get update && {APT_COMMAND}',
            file=sys.stderr)
        return 1
    except ValueError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    print(f'Fashion-MNIST written to {args.data_root}: '
          f"{counts['train']} train / {counts['test']} test images")
    return 0


if __name__ == '__main__':
    sys.exit(main())
