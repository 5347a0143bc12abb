"""Prepare a checkpoint for release: drop training state, add a hash.

Usage:
    python tools/publish_model.py IN.pth OUT_NAME.pth
Writes ``OUT_NAME-<first 8 hex of sha256>.pth`` and prints its path.
"""
import argparse
import hashlib
import os
import os.path as osp

import torch


def publish(in_file: str, out_file: str) -> str:
    ckpt = torch.load(in_file, map_location='cpu', weights_only=False)
    for key in ('optimizer', 'message_hub', 'param_schedulers', 'ema_state_dict'):
        ckpt.pop(key, None)
    if osp.abspath(out_file) == osp.abspath(in_file):
        raise ValueError('the output must differ from the input checkpoint')
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
    print(publish(args.in_file, args.out_file))


if __name__ == '__main__':
    main()
