#!/usr/bin/env bash
# The few-label protocol on Fashion-MNIST (configs/kd/README.md, "Few-label
# protocol"), 2 CPU cores: a ResNet-20 on the first 1,000 training images for
# 40 epochs, the released ResNet-56 teacher (model_zoo/reviewkd/).
#   1. selection, on the validation split only (5,000 training images
#      50,000-54,999), never the test set:
#      a. the baseline's lr from LRS (default "0.05 0.1 0.2"), seed 100;
#      b. a pilot: the baseline and KD at that lr for the seeds PILOT_SEEDS
#         (default "100 101 102"), to see the gain against the spread;
#   2. comparison: the CE baseline and KD at the selected lr for SEEDS (default "0 1 2 3 4"), each tested once at the end on the
#      10,000 test images and on its own 1,000 training images (fit);
#   3. the results (tools/experiments/collect_paired_protocol.py), written
#      into configs/kd/README.md, with every run's training log and test/fit
#      json copied to model_zoo/kd/fashion-mnist-1k/, unless README=0.
#
#   bash tools/experiments/few_label.sh
#
# Environment: PYTHON, WORK (default work_dirs/few_label), SEEDS, LRS, LR
# (skip the selection), PILOT_SEEDS, METHODS (the distilled arms of the
# comparison, default "kd"; "dist": configs/dist/README.md), JOBS (default 2:
# trainings at a time, one thread each), STAGE (select|compare|all, default
# all). Finished runs are skipped and interrupted ones resume, so the script
# can simply be restarted.
set -euo pipefail

cd "$(dirname "$0")/../.."
source tools/experiments/lib.sh
WORK=${WORK:-work_dirs/few_label}
SEEDS=${SEEDS:-"0 1 2 3 4"}
LRS=${LRS:-"0.05 0.1 0.2"}
PILOT_SEEDS=${PILOT_SEEDS:-"100 101 102"}
JOBS=${JOBS:-2}
STAGE=${STAGE:-all}
BASELINE="configs/vanilla/fashion-mnist/resnet20_1xb128-40e_fashion-mnist-1k.py"
KD="configs/kd/kd_resnet56-resnet20_1xb128-40e_fashion-mnist-1k.py"
METHODS=${METHODS:-kd}
declare -A METHOD_CONFIG=(
    [kd]=$KD
    [dist]=configs/dist/dist_resnet56-resnet20_1xb128-40e_fashion-mnist-1k.py
)
OPTS=()
FIT_INDICES=1000  # the training subset

if [ ! -f data/fashion_mnist/t10k-labels-idx1-ubyte ]; then
    "$PYTHON" tools/dataset_converters/prepare_fashion_mnist.py data/fashion_mnist
fi

select_baseline_lr "$BASELINE"
if [ "$STAGE" != compare ]; then
    # the baseline's pilot seeds: seed 100 is its lr-selection run
    mkdir -p "$WORK/select_baseline"
    ln -sfn "../select_baseline_lr$LR/seed100" "$WORK/select_baseline/seed100"
    for seed in $PILOT_SEEDS; do
        throttle
        [ -e "$WORK/select_baseline/seed$seed" ] ||
            job select_baseline "$BASELINE" "$seed" optim_wrapper.optimizer.lr="$LR" &
        throttle
        job select_kd "$KD" "$seed" optim_wrapper.optimizer.lr="$LR" &
    done
    wait
fi
[ "$STAGE" = select ] && exit 0

for seed in $SEEDS; do
    if [ "$METHODS" = kd ]; then
        throttle
        job baseline "$BASELINE" "$seed" optim_wrapper.optimizer.lr="$LR" &
    fi
    for method in $METHODS; do
        throttle
        job "$method" "${METHOD_CONFIG[$method]}" "$seed" \
            optim_wrapper.optimizer.lr="$LR" &
    done
done
wait
[ "$METHODS" = kd ] || exit 0  # collected with the released arms (configs/dist/README.md)
README_ARGS=()
if [ "${README:-1}" = 1 ]; then
    README_ARGS=(--readme configs/kd/README.md --mark few-label
                 --release model_zoo/kd/fashion-mnist-1k)
fi
"$PYTHON" tools/experiments/collect_paired_protocol.py "$WORK" \
    --arm baseline 'ResNet-20 (CE)' --arm kd 'ResNet-20 + KD' \
    --selected "baseline lr $LR (from ${LRS// / / }); KD: T 4, weight 1 (not selected)" \
    ${README_ARGS[@]+"${README_ARGS[@]}"}
