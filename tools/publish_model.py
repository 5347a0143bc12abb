"""Prepare a checkpoint for release: drop training state, add a hash.

The input is read with ``torch.load(weights_only=True)`` and only MMEngine's
own globals allowed: a file that would run code when unpickled is refused and
nothing is written.

Usage:
    python tools/publish_model.py IN.pth OUT_NAME.pth
Writes ``OUT_NAME-<first 8 hex of sha256>.pth`` and prints its path.
"""
import argparse
import hashlib
import os
import os.path as osp
import sys

import torch

from mmkd.utils.checkpoint_globals import (UnsafeCheckpointError,
                                           load_checkpoint_safely)


def publish(in_file: str, out_file: str) -> str:
    if osp.abspath(out_file) == osp.abspath(in_file):
        raise ValueError('the output must differ from the input checkpoint')
    # weights_only: a downloaded checkpoint cannot run code
    ckpt = load_checkpoint_safely(in_file)
    for key in ('optimizer', 'message_hub', 'param_schedulers',
                'ema_state_dict'):
        ckpt.pop(key, None)
    torch.save(ckpt, out_file)
    with open(out_file, 'rb') as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    stem = out_file[:-4] if out_file.endswith('.pth') else out_file
    final = f'{stem}-{sha[:8]}.pth'
    os.replace(out_file, final)
    return final


def main():
    parser = argparse.ArgumentParser(description='Publish a checkpoint')
    parser.add_argument('in_file', help='input checkpoint')
    parser.add_argument('out_file', help='output checkpoint name (.pth)')
    args = parser.parse_args()
    try:
        print(publish(args.in_file, args.out_file))
    except UnsafeCheckpointError as err:
        sys.exit(f'publish_model: {err}')


if __name__ == '__main__':
    main()
