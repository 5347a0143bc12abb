#!/usr/bin/env bash
# FRSKD's small-data protocol on Fashion-MNIST (configs/frskd/README.md,
# "Small-data protocol"), 2 CPU cores:
#   1. selection, on the validation split only (2,000 training images
#      50,000-51,999), seed 100: the baseline's lr from LRS (default
#      "0.1 0.03"); FRSKD's alpha/beta from WEIGHTS at the chosen lr;
#   2. comparison: baseline and FRSKD at the selected settings for SEEDS
#      (default "0 1 2 3 4"), each tested once at the end on the 10,000 test
#      images and on its own 1,000 training images (fit);
#   3. the results (tools/experiments/collect_paired_protocol.py).
#
#   bash tools/experiments/frskd_small_data.sh
#
# Environment: PYTHON, WORK (default work_dirs/frskd_small_data), SEEDS,
# LRS, WEIGHTS (default "2,100", the authors' CIFAR-100 values; alpha,beta pairs), JOBS (default 2:
# trainings at a time, one thread each), STAGE (select|compare|all, default
# all), LR / ALPHA / BETA to skip a selection. Finished runs are skipped and
# interrupted ones resume, so the script can simply be restarted.
set -euo pipefail

cd "$(dirname "$0")/../.."
source tools/experiments/lib.sh
WORK=${WORK:-work_dirs/frskd_small_data}
SEEDS=${SEEDS:-"0 1 2 3 4"}
LRS=${LRS:-"0.1 0.03"}
WEIGHTS=${WEIGHTS:-"2,100"}
JOBS=${JOBS:-2}
STAGE=${STAGE:-all}
OPTS=()

if [ ! -f data/fashion_mnist/t10k-labels-idx1-ubyte ]; then
    "$PYTHON" tools/dataset_converters/prepare_fashion_mnist.py data/fashion_mnist
fi
FIT_INDICES=1000  # the training subset

select_baseline_lr "configs/vanilla/fashion-mnist/resnet14_fashion-mnist-1k_baseline.py"
set -- $WEIGHTS
if [ -z "${ALPHA:-}" ] && [ $# -eq 1 ]; then  # one candidate: nothing to select
    ALPHA=${1%,*} BETA=${1#*,}
fi
if [ "$STAGE" != compare ] && [ -z "${ALPHA:-}" ]; then
    for w in $WEIGHTS; do
        throttle
        job "select_frskd_lr${LR}_a${w%,*}_b${w#*,}" "configs/frskd/resnet14_fashion-mnist-1k.py" 100 \
            optim_wrapper.optimizer.lr="$LR" model.losses.loss_kd.loss_weight="${w%,*}" \
            model.losses.loss_at.loss_weight="${w#*,}" &
    done
    wait
fi
if [ -z "${ALPHA:-}" ]; then
    runs=(); for w in $WEIGHTS; do runs+=("select_frskd_lr${LR}_a${w%,*}_b${w#*,}"); done
    best=$(best_of "${runs[@]}")
    ALPHA=$(echo "$best" | sed 's/.*_a\([^_]*\)_b.*/\1/')
    BETA=$(echo "$best" | sed 's/.*_b//')
fi
echo "FRSKD alpha, beta selected on the validation split: $ALPHA, $BETA"
[ "$STAGE" = select ] && exit 0

for seed in $SEEDS; do
    throttle
    job baseline "configs/vanilla/fashion-mnist/resnet14_fashion-mnist-1k_baseline.py" "$seed" \
        optim_wrapper.optimizer.lr="$LR" &
    throttle
    job frskd "configs/frskd/resnet14_fashion-mnist-1k.py" "$seed" \
        optim_wrapper.optimizer.lr="$LR" model.losses.loss_kd.loss_weight="$ALPHA" \
        model.losses.loss_at.loss_weight="$BETA" &
done
wait
"$PYTHON" tools/experiments/collect_paired_protocol.py "$WORK" \
    --arm baseline 'ResNet-14 (CE)' --arm frskd 'ResNet-14 + FRSKD' \
    --selected "lr=$LR alpha=$ALPHA beta=$BETA"
