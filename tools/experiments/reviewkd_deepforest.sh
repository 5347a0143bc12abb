#!/usr/bin/env bash
# ReviewKD for detection on the DeepForest tree tiles (45 train / 11 val
# tiles of about 400 px, one class), 2 CPU cores, everything from scratch:
#   1. the teacher, FCOS on a half-width ResNet-50, 200 epochs (seed 0);
#   2. the student, FCOS on a half-width ResNet-18, 100 epochs, for seeds
#      0 1 2: baseline and ReviewKD (review path + HCL over p3..p5);
#   3. bbox mAP by mmdet's CocoMetric into the results table
#      (configs/reviewkd/README.md and $WORK/results.{json,md}).
#
#   bash tools/experiments/reviewkd_deepforest.sh
#
# Needs data/deepforest_coco (bash tools/dataset_converters/prepare_all.sh).
# Environment: PYTHON (default: .venv/bin/python if present, else python),
# WORK (default: work_dirs/reviewkd_deepforest), SEEDS (default: "0 1 2"),
# MERGE (a results.json to add this work dir's seeds to, e.g. the released
# model_zoo/reviewkd/results_deepforest.json),
# TINY=1 for a quick end-to-end check (1 epoch on 4 training tiles; not
# written into the README), OMP_NUM_THREADS (default 1). A finished run (its
# work dir holds `done`) is skipped and an interrupted one resumes from its
# last checkpoint.
set -euo pipefail

cd "$(dirname "$0")/../.."
source tools/experiments/lib.sh
WORK=${WORK:-work_dirs/reviewkd_deepforest}
SEEDS=${SEEDS:-"0 1 2"}

OPTS=()
if [ "${TINY:-0}" = 1 ]; then
    OPTS=(train_cfg.max_epochs=1 train_dataloader.dataset.indices=4
          default_hooks.logger.interval=1)
fi

if [ ! -f data/deepforest_coco/annotations/instances_train.json ]; then
    echo "data/deepforest_coco is missing: run" \
        "bash tools/dataset_converters/prepare_all.sh" >&2
    exit 1
fi


start=$(date +%s)
run teacher_r50 "configs/vanilla/deepforest/fcos_r50-w32_fpn_1xb4-200e_deepforest.py" 0
# The best checkpoint by mAP; the last one if no epoch produced a detection
# (an untrained model: CocoMetric then reports nothing).
TDIR="$WORK/teacher_r50/seed0"
TEACHER=$(ls -t "$TDIR"/best_coco_bbox_mAP_epoch_*.pth 2>/dev/null \
    | head -n 1 || true)
if [ -z "$TEACHER" ]; then TEACHER=$(cat "$TDIR/last_checkpoint"); fi
echo "teacher checkpoint: $TEACHER"

for seed in $SEEDS; do
    run baseline_r18 "configs/vanilla/deepforest/fcos_r18-w32_fpn_1xb4-100e_deepforest.py" "$seed"
    run reviewkd_r50-r18 \
        "configs/reviewkd/reviewkd_fcos_r50-r18-w32_fpn_1xb4-100e_deepforest.py" \
        "$seed" model.teacher.checkpoint="$TEACHER"
done
echo "all runs: $(( ($(date +%s) - start) / 60 )) min"

README_ARGS=(--readme configs/reviewkd/README.md)
if [ "${TINY:-0}" = 1 ]; then README_ARGS=(); fi
if [ -n "${MERGE:-}" ]; then README_ARGS+=(--merge-results "$MERGE"); fi
"$PYTHON" tools/experiments/collect_paired_protocol.py \
    --preset reviewkd-deepforest "$WORK" \
    ${README_ARGS[@]+"${README_ARGS[@]}"}
