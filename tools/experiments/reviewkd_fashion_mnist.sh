#!/usr/bin/env bash
# ReviewKD on Fashion-MNIST (complete set), 2 CPU cores:
#   1. the teacher, CIFAR ResNet-56, 3 epochs (seed 0);
#   2. the student CIFAR ResNet-20, 1 epoch, for seeds 0 1 2: baseline,
#      ReviewKD (the paper's resnet56 -> resnet20 setting) and Hinton KD
#      (T=4), all on the same schedule;
#   3. the results table (configs/reviewkd/README.md and
#      $WORK/results.{json,md}).
#
#   bash tools/experiments/reviewkd_fashion_mnist.sh
#
# Needs data/fashion_mnist (bash tools/dataset_converters/prepare_all.sh).
# Environment: PYTHON (default: .venv/bin/python if present, else python),
# WORK (default: work_dirs/reviewkd_fashion_mnist), SEEDS (default:
# "0 1 2"), RUNS (default: "baseline reviewkd kd"; "reviewkd_bf16" is the
# ReviewKD run under bf16 autocast, `tools/train.py --amp`), MERGE (a
# results.json to add this work dir's runs to, e.g. the released
# model_zoo/reviewkd/results_fashion-mnist.json), TINY=1 for a quick end-to-end check on 512 training / 256 test
# images (its results are not written into the README), OMP_NUM_THREADS
# (default 1). A finished run (its work dir holds `done`) is skipped and an
# interrupted one resumes from its last checkpoint, so the script can simply
# be restarted.
set -euo pipefail

cd "$(dirname "$0")/../.."
source tools/experiments/lib.sh
WORK=${WORK:-work_dirs/reviewkd_fashion_mnist}
SEEDS=${SEEDS:-"0 1 2"}
RUNS=${RUNS:-"baseline reviewkd kd"}

OPTS=()
if [ "${TINY:-0}" = 1 ]; then
    OPTS=(train_dataloader.dataset.indices=512
          val_dataloader.dataset.indices=256 default_hooks.logger.interval=1)
fi

if [ ! -f data/fashion_mnist/train-images-idx3-ubyte ]; then
    echo "data/fashion_mnist is missing: run" \
        "bash tools/dataset_converters/prepare_all.sh" >&2
    exit 1
fi


best_ckpt() {  # the best checkpoint of a work dir
    ls -t "$1"/best_accuracy_top1_epoch_*.pth | head -n 1
}

start=$(date +%s)
run teacher_resnet56 "configs/vanilla/fashion-mnist/resnet56_1xb128-3e_fashion-mnist.py" 0
TEACHER=$(best_ckpt "$WORK/teacher_resnet56/seed0")
echo "teacher checkpoint: $TEACHER"

has_run() { case " $RUNS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
for seed in $SEEDS; do
    if has_run baseline; then
        run baseline_resnet20 "configs/vanilla/fashion-mnist/resnet20_1xb128-1e_fashion-mnist.py" \
            "$seed"
    fi
    if has_run reviewkd; then
        run reviewkd_resnet56-resnet20 \
            "configs/reviewkd/reviewkd_resnet56-resnet20_1xb128-1e_fashion-mnist.py" \
            "$seed" model.teacher.checkpoint="$TEACHER"
    fi
    if has_run kd; then
        run kd_resnet56-resnet20 \
            "configs/kd/kd_resnet56-resnet20_1xb128-1e_fashion-mnist.py" "$seed" \
            model.teacher.checkpoint="$TEACHER"
    fi
    if has_run reviewkd_bf16; then  # the same run under bf16 autocast
        TRAIN_ARGS=(--amp)
        run reviewkd_resnet56-resnet20_bf16 \
            "configs/reviewkd/reviewkd_resnet56-resnet20_1xb128-1e_fashion-mnist.py" \
            "$seed" model.teacher.checkpoint="$TEACHER"
        TRAIN_ARGS=()
    fi
done
echo "all runs: $(( ($(date +%s) - start) / 60 )) min"

README_ARGS=(--readme configs/reviewkd/README.md)
if [ "${TINY:-0}" = 1 ]; then README_ARGS=(); fi
if [ -n "${MERGE:-}" ]; then README_ARGS+=(--merge-results "$MERGE"); fi
"$PYTHON" tools/experiments/collect_paired_protocol.py \
    --preset reviewkd-fashion-mnist "$WORK" \
    ${README_ARGS[@]+"${README_ARGS[@]}"}
