#!/usr/bin/env bash
# FRSKD in about four minutes on two CPU cores (Fashion-MNIST):
#   1. unpacks Fashion-MNIST into data/fashion_mnist if it is missing;
#   2. trains the CE-only baseline and FRSKD (BiFPNc self-teacher) side by
#      side, one process per core, each for one epoch on 20,000 training
#      images (experiments/frskd/resnet14_fashion-mnist-demo{_baseline,}.py),
#      and prints both top-1 on the 10,000 test images;
#   3. converts the FRSKD checkpoint into a plain mmpretrain student
#      (tools/convert_to_student.py) and loads it with mmpretrain's
#      ImageClassificationInferencer in a fresh process that does not
#      import mmkd, which classifies the test set again.
#
#   bash tools/experiments/frskd_fashion_mnist_demo.sh
#
# Environment: PYTHON (default: .venv/bin/python if present, else python),
# WORK (default: work_dirs/frskd_fashion_mnist_demo), SEED (default: 0);
# OPTS (extra --cfg-options of both trainings) and CHECK_OPTS (extra
# arguments of check_student_inference.py) for quick checks of the script.
# One short epoch says little about FRSKD's gain: configs/frskd/README.md has the
# 2-epoch, 3-seed runs of tools/experiments/frskd_fashion_mnist.sh.
set -euo pipefail

cd "$(dirname "$0")/../.."
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python; fi
fi
WORK=${WORK:-work_dirs/frskd_fashion_mnist_demo}
SEED=${SEED:-0}
CFG=experiments/frskd
# one intra-op thread per training: two trainings fill the two cores
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}
start=$(date +%s)

if [ ! -f data/fashion_mnist/t10k-labels-idx1-ubyte ]; then
    if [ ! -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ]; then
        # Debian's dataset-fashion-mnist (31 MB): the complete data set
        SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
        $SUDO apt-get update -qq && $SUDO apt-get install -y -qq dataset-fashion-mnist
    fi
    "$PYTHON" tools/dataset_converters/prepare_fashion_mnist.py data/fashion_mnist
fi

train() {  # train NAME CONFIG
    local dir="$WORK/$1/seed$SEED"
    rm -rf "$dir"
    mkdir -p "$dir"
    "$PYTHON" tools/train.py "$2" --work-dir "$dir" \
        --cfg-options randomness.seed="$SEED" ${OPTS:-} \
        > "$WORK/$1/train.log" 2>&1 || {
        echo "$1 failed, see $WORK/$1/train.log" >&2
        return 1
    }
    touch "$dir/done"
    echo "[$(date +%H:%M:%S)] $1 finished (log: $WORK/$1/train.log)"
}
echo "[$(date +%H:%M:%S)] training the baseline and FRSKD side by side" \
    "(1 epoch, 20,000 images; 3-5 min)"
train baseline "$CFG/resnet14_fashion-mnist-demo_baseline.py" &
baseline=$!
train frskd "$CFG/resnet14_fashion-mnist-demo.py" &
frskd=$!
wait "$baseline"
wait "$frskd"

echo
echo "== top-1 (%) on the Fashion-MNIST test set =="
"$PYTHON" tools/experiments/collect_frskd.py "$WORK"
echo "(one short epoch, one seed: too noisy to rank the two; FRSKD's self-teacher"
echo " starts untrained. configs/frskd/README.md has the 4-epoch, 3-seed runs.)"

CKPT=$(ls "$WORK/frskd/seed$SEED"/epoch_*.pth | tail -n 1)
"$PYTHON" tools/convert_to_student.py "$CFG/resnet14_fashion-mnist-demo.py" \
    "$CKPT" "$WORK/resnet14_frskd_student.pth" 2>/dev/null
echo
echo "== the converted student, loaded by mmpretrain without mmkd =="
"$PYTHON" tools/experiments/check_student_inference.py \
    "$WORK/resnet14_frskd_student.py" "$WORK/resnet14_frskd_student.pth" \
    --data-root data/fashion_mnist ${CHECK_OPTS:-} 2>/dev/null
secs=$(( $(date +%s) - start ))
echo "demo finished in $((secs / 60)) min $((secs % 60)) s"
