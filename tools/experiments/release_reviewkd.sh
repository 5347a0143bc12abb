#!/usr/bin/env bash
# Release the ReviewKD students of the two small experiments in the model
# zoo (tools/experiments/release.sh: plain student weights with the sha256
# prefix in the name, the student config and the training log), and keep the
# logs of every run (teachers, baselines, KD) and the collected results.
#
#   bash tools/experiments/release_reviewkd.sh
#
# Reads work_dirs/reviewkd_{fashion_mnist,deepforest,short_schedule} (the run
# scripts' work dirs; a missing one is skipped), writes model_zoo/reviewkd/
# (and the short-schedule results, configs/reviewkd/results_short_schedule.json). The Fashion-MNIST students (1 MB) are
# released for every seed, the detection student (16 MB) for seed 0 only
# (DET_SEEDS); the logs of every seed are kept.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tools/experiments/lib.sh
OUT=model_zoo/reviewkd
SEEDS=${SEEDS:-"0 1 2"}
DET_SEEDS=${DET_SEEDS:-"0"}
mkdir -p "$OUT/logs"

# release SEEDS EXPERIMENT_WORK RUN CONFIG NAME
release() {
    local seeds=$1 work=$2 run=$3 config=$4 name=$5
    for seed in $seeds; do
        local dir="$work/$run/seed$seed"
        local ckpt log
        ckpt=$(cat "$dir/last_checkpoint")
        log=$(ls "$dir"/*/*.log | tail -n 1)
        bash tools/experiments/release.sh "$config" "$ckpt" "$log" "$OUT" \
            "${name}_seed$seed"
    done
}

logs() {  # logs EXPERIMENT_WORK PREFIX: the log of every finished run
    local work=$1 prefix=$2
    for done in "$work"/*/seed*/done; do
        local dir run seed
        dir=$(dirname "$done")
        run=$(basename "$(dirname "$dir")")
        seed=$(basename "$dir")
        cp "$(ls "$dir"/*/*.log | tail -n 1)" \
            "$OUT/logs/${prefix}_${run}_${seed}.log"
    done
    cp "$work/results.json" "$OUT/results_${prefix}.json"
}

FM=work_dirs/reviewkd_fashion_mnist
DF=work_dirs/reviewkd_deepforest
SS=work_dirs/reviewkd_short_schedule
# each part is released when its work dir is there
if [ -d "$FM/reviewkd_resnet56-resnet20" ]; then
    release "$SEEDS" "$FM" reviewkd_resnet56-resnet20 \
        "configs/reviewkd/reviewkd_resnet56-resnet20_1xb128-1e_fashion-mnist.py" \
        resnet20_reviewkd_fashion-mnist
    logs "$FM" fashion-mnist
fi
if [ -d "$DF/reviewkd_r50-r18" ]; then
    release "$DET_SEEDS" "$DF" reviewkd_r50-r18 \
        "configs/reviewkd/reviewkd_fcos_r50-r18-w32_fpn_1xb4-100e_deepforest.py" \
        fcos_r18-w32_reviewkd_deepforest
    logs "$DF" deepforest
fi
# The Fashion-MNIST teacher (3.4 MB): the weights the short-schedule
# protocol and the main job load (their config names the file; rename it
# there if the hash changes).
TEACHER_DIR="$FM/teacher_resnet56/seed0"
if [ -f "$TEACHER_DIR/done" ]; then
    rm -f "$OUT"/resnet56_fashion-mnist_teacher-*.pth
    "$PYTHON" tools/publish_model.py \
        "$(ls -t "$TEACHER_DIR"/best_accuracy_top1_epoch_*.pth | head -n 1)" \
        "$OUT/resnet56_fashion-mnist_teacher.pth"
    cp "$(ls "$TEACHER_DIR"/*/*.log | tail -n 1)" "$OUT/resnet56_fashion-mnist_teacher.log"
fi
if [ -d "$SS/reviewkd" ]; then
    release "${SS_SEEDS:-0 1 2 3 4}" "$SS" reviewkd \
        "configs/reviewkd/reviewkd_resnet56-resnet20_1xb128-1e_fashion-mnist-20k.py" \
        resnet20_reviewkd_fashion-mnist-20k
    for done in "$SS"/*/seed*/done; do
        dir=$(dirname "$done")
        run=$(basename "$(dirname "$dir")")
        cp "$(ls "$dir"/*/*.log | tail -n 1)" \
            "$OUT/logs/fashion-mnist-20k_${run}_$(basename "$dir").log"
    done
    cp "$SS/results.json" configs/reviewkd/results_short_schedule.json
fi
ls -l "$OUT"
