#!/usr/bin/env bash
# A distillation run against its CE baseline on real data, in a few minutes
# on two CPU cores: exactly one seed of a paired protocol, whose 5-seed
# result it prints and draws beside its own:
#   kd (default): Hinton KD from the released ResNet-56 teacher
#       (model_zoo/reviewkd/) to a ResNet-20 trained on the first 1,000
#       Fashion-MNIST training images for 40 epochs: the few-label protocol
#       of configs/kd/README.md (about 5 min);
#   reviewkd: ReviewKD ResNet-56 -> ResNet-20 with the same teacher, one
#       epoch on the first 20,000 images: the short-schedule protocol of
#       configs/reviewkd/README.md (about 5 min);
#   frskd: FRSKD (BiFPNc self-teacher, KD + AT) on a ResNet-14, 40 epochs on
#       the first 1,000 images: the small-data protocol of
#       configs/frskd/README.md, where FRSKD does not beat its baseline
#       (about 9 min).
# Steps:
#   1. unpacks Fashion-MNIST into data/fashion_mnist if it is missing;
#   2. trains the baseline and the distilled student side by side, one
#      process per core, with the protocol's configs and lr;
#   3. tests both final checkpoints on the 10,000 test images and prints
#      this run's difference beside the protocol's paired difference and its
#      95 % interval; draws the protocol's per-seed pairs with this run's
#      pair marked ($WORK/seeds.png);
#   4. plots both runs' validation top-1 and loss terms ($WORK/curves.png);
#   5. converts the distilled checkpoint into a plain mmpretrain student
#      (tools/convert_to_student.py) and classifies the test set again with
#      mmpretrain's ImageClassificationInferencer in a new process.
#
#   bash tools/experiments/fashion_mnist_demo.sh [kd|reviewkd|frskd]
#
# Environment: PYTHON (default: .venv/bin/python if present, else python),
# WORK (default: work_dirs/<method>_fashion_mnist_demo), SEED (default: 0);
# OPTS (extra --cfg-options of both trainings) and CHECK_OPTS (extra
# arguments of check_student_inference.py) for quick checks of the script.
set -euo pipefail

cd "$(dirname "$0")/../.."
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python; fi
fi
METHOD=${1:-kd}
case "$METHOD" in
    kd)
        NAME=KD
        BASELINE=experiments/reviewkd/resnet20_1xb128-40e_fashion-mnist-1k.py
        DISTILL=experiments/reviewkd/kd_resnet56-resnet20_1xb128-40e_fashion-mnist-1k.py
        RESULTS=configs/kd/results_few_label.json
        STUDENT=resnet20_kd_student
        WHAT="ResNet-56 -> ResNet-20, 1,000 images, 40 epochs; about 5 min"
        ;;
    reviewkd)
        NAME=ReviewKD
        BASELINE=experiments/reviewkd/resnet20_1xb128-1e_fashion-mnist-20k.py
        DISTILL=experiments/reviewkd/reviewkd_resnet56-resnet20_1xb128-1e_fashion-mnist-20k.py
        RESULTS=configs/reviewkd/results_short_schedule.json
        STUDENT=resnet20_reviewkd_student
        WHAT="ResNet-56 -> ResNet-20, 20,000 images, 1 epoch; about 5 min"
        ;;
    frskd)
        NAME=FRSKD
        BASELINE=experiments/frskd/resnet14_fashion-mnist-1k_baseline.py
        DISTILL=experiments/frskd/resnet14_fashion-mnist-1k.py
        RESULTS=configs/frskd/results_small_data.json
        STUDENT=resnet14_frskd_student
        WHAT="ResNet-14, 1,000 images, 40 epochs; about 9 min"
        ;;
    *)
        echo "usage: $0 [kd|reviewkd|frskd]" >&2
        exit 2
        ;;
esac
WORK=${WORK:-work_dirs/${METHOD}_fashion_mnist_demo}
SEED=${SEED:-0}
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
echo "[$(date +%H:%M:%S)] training the baseline and $NAME side by side ($WHAT)"
train baseline "$BASELINE" &
baseline=$!
train "$METHOD" "$DISTILL" &
distilled=$!
wait "$baseline"
wait "$distilled"

echo
echo "== top-1 (%) on the 10,000 Fashion-MNIST test images =="
"$PYTHON" tools/experiments/compare_with_protocol.py "$WORK" "$RESULTS" \
    --seed "seed$SEED" --plot "$WORK/seeds.png"
echo "per-seed pairs: $WORK/seeds.png"

"$PYTHON" tools/analysis_tools/plot_curves.py "$WORK/curves.png" \
    --arm baseline "$WORK/baseline/seed$SEED" --arm "$NAME" "$WORK/$METHOD/seed$SEED" \
    --alias loss=student.loss \
    --title "$NAME vs CE baseline, Fashion-MNIST (seed $SEED)" \
    > /dev/null 2>&1 && echo "curves: $WORK/curves.png"

CKPT=$(ls "$WORK/$METHOD/seed$SEED"/epoch_*.pth | sort -V | tail -n 1)
"$PYTHON" tools/convert_to_student.py "$DISTILL" "$CKPT" "$WORK/$STUDENT.pth" \
    2>/dev/null
echo
echo "== the converted student, loaded by mmpretrain's inferencer =="
"$PYTHON" tools/experiments/check_student_inference.py \
    "$WORK/$STUDENT.py" "$WORK/$STUDENT.pth" \
    --data-root data/fashion_mnist ${CHECK_OPTS:-}
secs=$(( $(date +%s) - start ))
echo "demo finished in $((secs / 60)) min $((secs % 60)) s"
