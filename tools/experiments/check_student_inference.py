"""Load a converted student with mmpretrain alone and classify Fashion-MNIST.

Checks the release path of mmkd: the config and checkpoint written by
``tools/convert_to_student.py`` are loaded by mmpretrain's own
``ImageClassificationInferencer`` in a process that never imports mmkd
(checked at the end), which then classifies test images read straight from
the IDX files.

Usage::

    python tools/experiments/check_student_inference.py STUDENT.py \
        STUDENT.pth [--data-root data/fashion_mnist] [--num 10000]

Prints the prediction of the first test image and the top-1 accuracy on the
first ``--num`` test images (equal to the training run's test accuracy for
the whole test set). Exits with status 1 if mmkd was imported, unless the
student's config names an mmkd backbone (the CIFAR ResNets of the ReviewKD
students): then mmkd is imported for that registry alone, and every module
of the loaded model must be mmpretrain's or an mmkd backbone (no distiller,
connector or loss).
"""
import argparse
import os.path as osp
import sys
import warnings

import numpy as np


def read_idx(path: str) -> np.ndarray:
    """An unpacked uint8 IDX file (Fashion-MNIST images or labels)."""
    with open(path, 'rb') as f:
        data = f.read()
    ndim = data[3]
    shape = [
        int.from_bytes(data[4 + 4 * i:8 + 4 * i], 'big') for i in range(ndim)
    ]
    return np.frombuffer(
        data, np.uint8, offset=4 + 4 * ndim).reshape(shape).copy()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='student config (convert_to_student)')
    parser.add_argument('checkpoint', help='student checkpoint')
    parser.add_argument('--data-root', default='data/fashion_mnist')
    parser.add_argument('--num', type=int, default=10000)
    args = parser.parse_args()

    warnings.filterwarnings('ignore', message='.*pkg_resources.*')
    from mmpretrain.apis import ImageClassificationInferencer
    images = read_idx(osp.join(args.data_root, 't10k-images-idx3-ubyte'))
    labels = read_idx(osp.join(args.data_root, 't10k-labels-idx1-ubyte'))
    images, labels = images[:args.num], labels[:args.num]

    inferencer = ImageClassificationInferencer(
        model=args.config, pretrained=args.checkpoint, device='cpu')
    preds = inferencer(list(images), batch_size=256)
    first = preds[0]
    print(f"first test image: predicted '{first['pred_class']}' "
          f"(label {first['pred_label']}, score {first['pred_score']:.3f}),"
          f' true label {labels[0]}')
    correct = sum(int(p['pred_label'] == y) for p, y in zip(preds, labels))
    print(f'top-1 on {len(labels)} test images (mmpretrain inferencer): '
          f'{100.0 * correct / len(labels):.2f}')

    from mmengine.config import Config
    mmkd_types = sorted(mmkd_types_of(Config.fromfile(
        args.config, import_custom_modules=False).model))
    if mmkd_types:
        foreign = sorted({
            f'{type(m).__module__}.{type(m).__name__}'
            for m in inferencer.model.modules()
            if type(m).__module__.startswith('mmkd.')
            and not type(m).__module__.startswith('mmkd.models.backbones')
        })
        if foreign:
            print(f'error: the student holds mmkd modules {foreign}',
                  file=sys.stderr)
            return 1
        print(f'the student is mmpretrain\'s {type(inferencer.model).__name__}'
              f' with the mmkd backbone {", ".join(mmkd_types)}; no distiller'
              ' code is part of it')
        return 0
    if any(name == 'mmkd' or name.startswith('mmkd.') for name in sys.modules):
        print('error: mmkd was imported', file=sys.stderr)
        return 1
    print('mmkd was not imported: the student loads with mmpretrain alone')
    return 0


def mmkd_types_of(cfg) -> set:
    """The ``type`` values of a (nested) model config that name mmkd."""
    found = set()
    if isinstance(cfg, dict):
        kind = cfg.get('type')
        if isinstance(kind, str) and kind.startswith('mmkd.'):
            found.add(kind)
        for value in cfg.values():
            found |= mmkd_types_of(value)
    elif isinstance(cfg, (list, tuple)):
        for value in cfg:
            found |= mmkd_types_of(value)
    return found


if __name__ == '__main__':
    sys.exit(main())
