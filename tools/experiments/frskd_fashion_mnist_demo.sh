#!/usr/bin/env bash
# The main job: FRSKD against its CE baseline in the regime where the
# paper's mechanism (self-distillation as a regulariser) can act, on real
# data, in about 10 minutes on two CPU cores:
#   1. unpacks Fashion-MNIST into data/fashion_mnist if it is missing;
#   2. trains the CE-only baseline and FRSKD (BiFPNc self-teacher, KD + AT)
#      side by side, one process per core, on the first 1,000 training
#      images for 40 epochs (lr 0.03, selected for the baseline on a
#      validation split), exactly one seed of the small-data protocol of
#      configs/frskd/README.md (experiments/frskd/resnet14_fashion-mnist-1k*);
#   3. tests both final checkpoints on the 10,000 test images and prints
#      this run's difference beside the protocol's 5-seed paired difference
#      and its 95 % interval (configs/frskd/results_small_data.json);
#   4. plots both runs' validation top-1 and loss terms
#      ($WORK/curves.png);
#   5. converts the FRSKD checkpoint into a plain mmpretrain student
#      (tools/convert_to_student.py) and classifies the test set again with
#      mmpretrain's ImageClassificationInferencer in a process that does not
#      import mmkd.
#
#   bash tools/experiments/frskd_fashion_mnist_demo.sh
#
# Environment: PYTHON (default: .venv/bin/python if present, else python),
# WORK (default: work_dirs/frskd_fashion_mnist_demo), SEED (default: 0);
# OPTS (extra --cfg-options of both trainings) and CHECK_OPTS (extra
# arguments of check_student_inference.py) for quick checks of the script.
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

train() {  # train NAME CONFIG: train, then test the final checkpoint
    local dir="$WORK/$1/seed$SEED"
    rm -rf "$dir"
    mkdir -p "$dir"
    {
        "$PYTHON" tools/train.py "$2" --work-dir "$dir" \
            --cfg-options randomness.seed="$SEED" ${OPTS:-} &&
        touch "$dir/done" &&
        "$PYTHON" tools/test.py "$2" "$(ls "$dir"/epoch_*.pth | sort -V | tail -n 1)" \
            --work-dir "$dir/test" --out "$dir/test.json"
    } > "$WORK/$1/train.log" 2>&1 || {
        echo "$1 failed, see $WORK/$1/train.log" >&2
        return 1
    }
    echo "[$(date +%H:%M:%S)] $1 finished (log: $WORK/$1/train.log)"
}
echo "[$(date +%H:%M:%S)] training the baseline and FRSKD side by side" \
    "(1,000 images, 40 epochs; about 10 min)"
train baseline "$CFG/resnet14_fashion-mnist-1k_baseline.py" &
baseline=$!
train frskd "$CFG/resnet14_fashion-mnist-1k.py" &
frskd=$!
wait "$baseline"
wait "$frskd"

echo
echo "== top-1 (%) on the 10,000 Fashion-MNIST test images =="
"$PYTHON" tools/experiments/compare_with_protocol.py "$WORK" \
    configs/frskd/results_small_data.json --seed "seed$SEED"

"$PYTHON" tools/analysis_tools/plot_curves.py "$WORK/curves.png" \
    --arm baseline "$WORK/baseline/seed$SEED" --arm FRSKD "$WORK/frskd/seed$SEED" \
    --title "FRSKD vs CE baseline, 1,000 Fashion-MNIST images (seed $SEED)" \
    > /dev/null 2>&1 && echo "curves: $WORK/curves.png"

CKPT=$(ls "$WORK/frskd/seed$SEED"/epoch_*.pth | sort -V | tail -n 1)
"$PYTHON" tools/convert_to_student.py "$CFG/resnet14_fashion-mnist-1k.py" \
    "$CKPT" "$WORK/resnet14_frskd_student.pth" 2>/dev/null
echo
echo "== the converted student, loaded by mmpretrain without mmkd =="
"$PYTHON" tools/experiments/check_student_inference.py \
    "$WORK/resnet14_frskd_student.py" "$WORK/resnet14_frskd_student.pth" \
    --data-root data/fashion_mnist ${CHECK_OPTS:-} 2>/dev/null
secs=$(( $(date +%s) - start ))
echo "demo finished in $((secs / 60)) min $((secs % 60)) s"
