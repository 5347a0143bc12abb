#!/usr/bin/env bash
# ReviewKD's short-schedule protocol on Fashion-MNIST (configs/reviewkd/
# README.md, "Short-schedule protocol"), 2 CPU cores:
#   1. selection, on the validation split only (5,000 training images
#      50,000-54,999), seed 100: the baseline's lr from LRS (default
#      "0.05 0.1 0.2");
#   2. comparison: the CE baseline and ReviewKD (the released ResNet-56
#      teacher) at the selected lr for SEEDS (default "0 1 2 3 4"), each
#      tested once at the end on the 10,000 test images and on its own
#      20,000 training images (fit);
#   3. the results (tools/experiments/collect_paired_protocol.py), written
#      into configs/reviewkd/README.md unless README=0.
#
#   bash tools/experiments/reviewkd_short_schedule.sh
#
# Environment: PYTHON, WORK (default work_dirs/reviewkd_short_schedule),
# SEEDS, LRS, LR (skip the selection), JOBS (default 2: trainings at a time,
# one thread each), STAGE (select|compare|all, default all). Finished runs
# are skipped and interrupted ones resume, so the script can simply be
# restarted.
set -euo pipefail

cd "$(dirname "$0")/../.."
source tools/experiments/lib.sh
WORK=${WORK:-work_dirs/reviewkd_short_schedule}
SEEDS=${SEEDS:-"0 1 2 3 4"}
LRS=${LRS:-"0.05 0.1 0.2"}
JOBS=${JOBS:-2}
STAGE=${STAGE:-all}
BASELINE="configs/vanilla/fashion-mnist/resnet20_1xb128-1e_fashion-mnist-20k.py"
REVIEWKD="configs/reviewkd/reviewkd_resnet56-resnet20_1xb128-1e_fashion-mnist-20k.py"
OPTS=()
FIT_INDICES=20000  # the training subset

if [ ! -f data/fashion_mnist/t10k-labels-idx1-ubyte ]; then
    "$PYTHON" tools/dataset_converters/prepare_fashion_mnist.py data/fashion_mnist
fi

select_baseline_lr "$BASELINE"
[ "$STAGE" = select ] && exit 0

for seed in $SEEDS; do
    throttle
    job baseline "$BASELINE" "$seed" optim_wrapper.optimizer.lr="$LR" &
    throttle
    job reviewkd "$REVIEWKD" "$seed" optim_wrapper.optimizer.lr="$LR" &
done
wait
README_ARGS=()
if [ "${README:-1}" = 1 ]; then
    README_ARGS=(--readme configs/reviewkd/README.md --mark reviewkd-short-schedule)
fi
"$PYTHON" tools/experiments/collect_paired_protocol.py "$WORK" \
    --arm baseline 'ResNet-20 (CE)' --arm reviewkd 'ResNet-20 + ReviewKD' \
    --selected "baseline lr $LR (from ${LRS// / / }); ReviewKD: HCL weight 0.6 (the authors' value for this pair, not selected)" \
    ${README_ARGS[@]+"${README_ARGS[@]}"}
