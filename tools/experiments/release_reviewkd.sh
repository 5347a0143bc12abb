#!/usr/bin/env bash
# Release the ReviewKD students of the two small experiments in the model
# zoo (tools/experiments/release.sh: plain student weights with the sha256
# prefix in the name, the student config and the training log), and keep the
# logs of every run (teachers, baselines, KD) and the collected results.
#
#   bash tools/experiments/release_reviewkd.sh
#
# Reads work_dirs/reviewkd_{fashion_mnist,deepforest} (the run scripts' work
# dirs), writes model_zoo/reviewkd/. The Fashion-MNIST students (1 MB) are
# released for every seed, the detection student (16 MB) for seed 0 only
# (DET_SEEDS); the logs of every seed are kept.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=model_zoo/reviewkd
CFG=experiments/reviewkd
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
release "$SEEDS" "$FM" reviewkd_resnet56-resnet20 \
    "$CFG/reviewkd_resnet56-resnet20_1xb128-1e_fashion-mnist.py" \
    resnet20_reviewkd_fashion-mnist
release "$DET_SEEDS" "$DF" reviewkd_r50-r18 \
    "$CFG/reviewkd_fcos_r50-r18-w32_fpn_1xb4-100e_deepforest.py" \
    fcos_r18-w32_reviewkd_deepforest
logs "$FM" fashion-mnist
logs "$DF" deepforest
ls -l "$OUT"
