#!/usr/bin/env bash
# Set up mmkd on a CUDA machine without network, from the wheels of
# tools/gpu/build_wheelhouse.sh: classification only.
#
# Usage: bash tools/gpu/setup_offline.sh [WHEELHOUSE]   (default: .wheelhouse)
#        then: source .gpu_site/env.sh                  (PYTHONPATH)
#
# Needs a Python with torch (CUDA build, a CUDA device visible), torchvision,
# numpy, opencv, matplotlib and rich. Installs, with
# `pip install --no-index --no-deps --target`, the wheels whose distribution
# this Python lacks (mmengine, mmcv-lite and mmpretrain always, at the
# wheelhouse's versions) into .gpu_site/ (MMKD_GPU_SITE), so the image's
# site-packages is never written; mmkd runs from this working tree (on
# PYTHONPATH, with its mmkd/.mim links as an editable install makes them).
# Nothing is built and nothing is downloaded.
#
# mmcv is installed WITHOUT its compiled ops (mmcv-lite): mmpretrain needs
# only mmcv's Python parts, while mmdet and mmseg need the ops, whose CUDA
# build takes far longer than a short offline session. The GPU path is
# therefore classification only (KD, DKD, ReviewKD, FRSKD on mmpretrain
# models); detection and segmentation need tools/setup_env.sh.
#
# Without CUDA it refuses (exit 2). MMKD_SETUP_WITHOUT_CUDA=1 skips only that
# refusal: a dry run of the install on a CPU machine.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WHEELHOUSE="$(cd "${1:-$ROOT/.wheelhouse}" 2>/dev/null && pwd)" || {
  echo "setup_offline: no wheelhouse at ${1:-$ROOT/.wheelhouse}; build it" \
       "with network: bash tools/gpu/build_wheelhouse.sh" >&2; exit 1; }
SITE="${MMKD_GPU_SITE:-$ROOT/.gpu_site}"
PYTHON="${PYTHON:-python3}"
log() { printf '[setup_offline] %s\n' "$*" >&2; }

if [ "${MMKD_SETUP_WITHOUT_CUDA:-0}" != 1 ]; then
  if ! "$PYTHON" - <<'PY'
import sys
try:
    import torch
except ImportError as e:
    sys.exit(f'setup_offline: torch is not importable ({e})')
if not torch.cuda.is_available():
    sys.exit(
        f'setup_offline: CUDA is required: torch {torch.__version__} sees no '
        'CUDA device (torch.cuda.is_available() is False). This offline '
        'set-up is for a CUDA machine (classification only). On a machine '
        'without CUDA, with network, run `bash tools/setup_env.sh` instead '
        '(it builds mmcv with its CPU ops, for every task); '
        'MMKD_SETUP_WITHOUT_CUDA=1 runs this install as a dry run.')
print(f'[setup_offline] torch {torch.__version__}, CUDA {torch.version.cuda}'
      f', {torch.cuda.get_device_name(0)}', file=sys.stderr)
PY
  then exit 2; fi
fi

start=$SECONDS
mkdir -p "$SITE"
stamp="$SITE/.installed-$(cat "$WHEELHOUSE"/*.whl | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  # The wheels to install: those whose distribution this Python lacks, and
  # always the three OpenMMLab packages (pinned by the wheelhouse).
  mapfile -t wheels < <("$PYTHON" - "$WHEELHOUSE" <<'PY'
import glob
import importlib.metadata as md
import os
import re
import sys

ALWAYS = {'mmengine', 'mmcv-lite', 'mmpretrain'}
for wheel in sorted(glob.glob(os.path.join(sys.argv[1], '*.whl'))):
    name = re.sub(r'[-_.]+', '-', os.path.basename(wheel).split('-')[0])
    name = name.lower()
    try:
        md.version(name)
        present = name not in ALWAYS
    except md.PackageNotFoundError:
        present = False
    if not present:
        print(wheel)
PY
  )
  rm -rf "$SITE"
  mkdir -p "$SITE"
  log "installing ${#wheels[@]} wheels into $SITE (no index, no deps)"
  if "$PYTHON" -m pip --version >/dev/null 2>&1; then
    PIP_NO_INDEX=1 "$PYTHON" -m pip install -q --no-index --no-deps \
      --disable-pip-version-check --no-warn-script-location \
      --find-links "$WHEELHOUSE" --target "$SITE" "${wheels[@]}"
  else  # no pip: a wheel is a zip of its import tree
    log "pip is missing: unpacking the wheels"
    for w in "${wheels[@]}"; do "$PYTHON" -m zipfile -e "$w" "$SITE"; done
  fi
  touch "$stamp"
fi

# mmkd from the working tree: its configs in mmkd/.mim, as setup.py's
# editable install links them (mmkd::<method>/<config>.py).
mkdir -p "$ROOT/mmkd/.mim"
for item in configs model-index.yml; do
  ln -sfn "../../$item" "$ROOT/mmkd/.mim/$item"
done
cat > "$SITE/env.sh" <<ENV
# source me: mmkd from $ROOT with the offline wheels of $SITE
export PYTHONPATH="$ROOT:$SITE\${PYTHONPATH:+:\$PYTHONPATH}"
ENV

PYTHONPATH="$ROOT:$SITE${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" - "$ROOT" <<'PY'
import os
import sys
import warnings

warnings.filterwarnings('ignore', message='.*MultiScaleDeformableAttention')
import mmcv  # noqa: E402
import mmengine  # noqa: E402
import mmpretrain  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import mmkd  # noqa: E402
assert os.path.dirname(os.path.dirname(mmkd.__file__)) == sys.argv[1], \
    f'mmkd imported from {mmkd.__file__}, not from the working tree'
from mmengine.registry import init_default_scope  # noqa: E402

from mmkd.registry import MODELS  # noqa: E402
init_default_scope('mmpretrain')
net = MODELS.build(dict(type='ImageClassifier', backbone=dict(
    type='ResNet', depth=18), neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=10, in_channels=512)))
assert net.eval()(torch.zeros(1, 3, 32, 32), mode='tensor').shape == (1, 10)
print(f'[setup_offline] mmkd {mmkd.__version__} ({mmkd.__file__}), '
      f'mmengine {mmengine.__version__}, mmcv {mmcv.__version__} (no ops), '
      f'mmpretrain {mmpretrain.__version__}, pytest {pytest.__version__}, '
      f'torch {torch.__version__}', file=sys.stderr)
PY
log "ready in $((SECONDS - start)) s: source $SITE/env.sh"
