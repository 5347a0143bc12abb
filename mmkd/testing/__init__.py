"""Helpers for tests: tiny synthetic datasets in the real on-disk formats."""
from .data import (make_cityscapes, make_coco, make_cub, make_fashion_mnist,
                   make_imagenet_folder, write_idx)

__all__ = [
    'write_idx', 'make_cub', 'make_imagenet_folder', 'make_coco',
    'make_cityscapes', 'make_fashion_mnist'
]
