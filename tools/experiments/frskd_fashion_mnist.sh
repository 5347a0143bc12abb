#!/usr/bin/env bash
# FRSKD on Fashion-MNIST (complete set, 60,000 / 10,000), 2 CPU cores:
# the ResNet-14 student
# (configs/vanilla/fashion-mnist/resnet14_fashion-mnist_baseline.py),
# 2 epochs, trained CE-only (baseline) and with FRSKD
# (configs/frskd/resnet14_fashion-mnist.py) for seeds 0 1 2, then the
# results table (configs/frskd/README.md and $WORK/results.{json,md}).
#
#   bash tools/experiments/frskd_fashion_mnist.sh
#
# Runs JOBS (default 2) trainings at a time, each with one intra-op thread
# (OMP_NUM_THREADS=1): one process per core. (A two-thread process was
# measured 6x slower per step than a one-thread one when the cores were
# shared with other jobs: the OpenMP threads wait for each other.)
# Estimated on an otherwise idle 2-core machine: ~15 min per FRSKD run,
# ~5 min per baseline run, ~30 min in all (JOBS=2). Each run logs to
# $WORK/<run>/seed<N>.log.
#
# Environment: PYTHON (default: .venv/bin/python if present, else python),
# WORK (default: work_dirs/frskd_fashion_mnist), SEEDS (default: "0 1 2"),
# JOBS (default: 2), TINY=1 for a quick end-to-end check of the script on
# 512 training / 256 test images and 1 epoch (its table is not written into
# the README). A finished run (its work dir holds `done`) is skipped, so the
# script can be restarted after an interruption (an unfinished run resumes
# from its last checkpoint).
set -euo pipefail

cd "$(dirname "$0")/../.."
source tools/experiments/lib.sh
WORK=${WORK:-work_dirs/frskd_fashion_mnist}
SEEDS=${SEEDS:-"0 1 2"}
EVALUATE=0  # the table is the validation top-1 over training

OPTS=()
if [ "${TINY:-0}" = 1 ]; then
    OPTS=(train_dataloader.dataset.indices=512
          val_dataloader.dataset.indices=256 train_cfg.max_epochs=1
          default_hooks.logger.interval=1)
fi

if [ ! -f data/fashion_mnist/t10k-labels-idx1-ubyte ]; then
    "$PYTHON" tools/dataset_converters/prepare_fashion_mnist.py data/fashion_mnist
fi

start=$(date +%s)
for seed in $SEEDS; do  # the long runs first
    throttle
    job frskd "configs/frskd/resnet14_fashion-mnist.py" "$seed" &
done
for seed in $SEEDS; do
    throttle
    job baseline "configs/vanilla/fashion-mnist/resnet14_fashion-mnist_baseline.py" "$seed" &
done
wait
echo "all runs: $(( ($(date +%s) - start) / 60 )) min"

README_ARGS=(--readme configs/frskd/README.md)
if [ "${TINY:-0}" = 1 ]; then README_ARGS=(); fi
"$PYTHON" tools/experiments/collect_paired_protocol.py \
    --preset frskd-fashion-mnist "$WORK" \
    ${README_ARGS[@]+"${README_ARGS[@]}"}
