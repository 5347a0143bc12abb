#!/usr/bin/env bash
# A distillation run against its CE baseline on real data, in a few minutes
# on two CPU cores: exactly one seed of a paired protocol, whose 5-seed
# result it prints and draws beside its own. By default the seed is the
# protocol's median one (the seed whose paired difference is the median of
# the five), so the run shows a typical run of the protocol:
#   reviewkd (default): ReviewKD ResNet-56 -> ResNet-20 with the released
#       teacher (model_zoo/reviewkd/), one epoch on the first 20,000
#       Fashion-MNIST training images: the short-schedule protocol of
#       configs/reviewkd/README.md (about 5 min);
#   kd: Hinton KD from the released ResNet-56 teacher
#       (model_zoo/reviewkd/) to a ResNet-20 trained on the first 1,000
#       Fashion-MNIST training images for 40 epochs: the few-label protocol
#       of configs/kd/README.md (about 5 min);
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
#   bash tools/experiments/fashion_mnist_demo.sh [reviewkd|kd|frskd]
#
# A finished run (its work dir holds `done`) is skipped and an interrupted
# one resumes (tools/experiments/lib.sh); each logs to $WORK/<run>/seed<N>.log.
#
# Environment: PYTHON (default: .venv/bin/python if present, else python),
# WORK (default: work_dirs/<method>_fashion_mnist_demo), SEED (default: the
# protocol's median seed, e.g. 4 for reviewkd);
# OPTS (extra --cfg-options of both trainings) and CHECK_OPTS (extra
# arguments of check_student_inference.py) for quick checks of the script.
set -euo pipefail

cd "$(dirname "$0")/../.."
source tools/experiments/lib.sh
METHOD=${1:-reviewkd}
case "$METHOD" in
    kd)
        NAME=KD
        BASELINE=configs/vanilla/fashion-mnist/resnet20_1xb128-40e_fashion-mnist-1k.py
        DISTILL=configs/kd/kd_resnet56-resnet20_1xb128-40e_fashion-mnist-1k.py
        RESULTS=configs/kd/results_few_label.json
        STUDENT=resnet20_kd_student
        WHAT="ResNet-56 -> ResNet-20, 1,000 images, 40 epochs; about 5 min"
        ;;
    reviewkd)
        NAME=ReviewKD
        BASELINE=configs/vanilla/fashion-mnist/resnet20_1xb128-1e_fashion-mnist-20k.py
        DISTILL=configs/reviewkd/reviewkd_resnet56-resnet20_1xb128-1e_fashion-mnist-20k.py
        RESULTS=configs/reviewkd/results_short_schedule.json
        STUDENT=resnet20_reviewkd_student
        WHAT="ResNet-56 -> ResNet-20, 20,000 images, 1 epoch; about 5 min"
        ;;
    frskd)
        NAME=FRSKD
        BASELINE=configs/vanilla/fashion-mnist/resnet14_fashion-mnist-1k_baseline.py
        DISTILL=configs/frskd/resnet14_fashion-mnist-1k.py
        RESULTS=configs/frskd/results_small_data.json
        STUDENT=resnet14_frskd_student
        WHAT="ResNet-14, 1,000 images, 40 epochs; about 9 min"
        ;;
    *)
        echo "usage: $0 [reviewkd|kd|frskd]" >&2
        exit 2
        ;;
esac
WORK=${WORK:-work_dirs/${METHOD}_fashion_mnist_demo}
SEED=${SEED:-$("$PYTHON" tools/experiments/compare_with_protocol.py --median-seed "$RESULTS" | sed 's/seed//')}
# one intra-op thread per training: two trainings fill the two cores
start=$(date +%s)

if [ ! -f data/fashion_mnist/t10k-labels-idx1-ubyte ]; then
    if [ ! -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ]; then
        # Debian's dataset-fashion-mnist (31 MB): the complete data set
        SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
        $SUDO apt-get update -qq && $SUDO apt-get install -y -qq dataset-fashion-mnist
    fi
    "$PYTHON" tools/dataset_converters/prepare_fashion_mnist.py data/fashion_mnist
fi

read -ra OPTS <<< "${OPTS:-}"  # the --cfg-options of both trainings
echo "[$(date +%H:%M:%S)] training the baseline and $NAME side by side ($WHAT)"
job baseline "$BASELINE" "$SEED" &
baseline=$!
job "$METHOD" "$DISTILL" "$SEED" &
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
