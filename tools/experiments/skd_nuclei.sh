#!/usr/bin/env bash
# SKD on real data here: the stardist nuclei tiles (12 train / 4 val tiles of
# 128x128, background / nucleus; tools/dataset_converters/stardist_to_mmseg.py)
#
#   1. a PSPNet-R34 teacher trained from scratch (900 iterations);
#   2. PSPNet-R18 students, for every seed: baseline, + pixel-wise,
#      + pixel-wise + pair-wise, + all three (holistic critic), 450 each;
#   3. tools/experiments/collect_skd_nuclei.py: mIoU (mmseg's IoUMetric) per
#      run -> $WORK_DIR/results.{json,md} and the table in configs/skd/README.md.
#
# Runs one after the other on the CPU (or the GPU if there is one). Finished
# runs (a `done` file in their work dir) are skipped, so the script resumes.
# Duration on 2 free CPU cores: about 35 minutes (measured steps, batch 8 at
# 64x64: teacher 0.38 s, baseline 0.20 s, + Pi 0.29 s, + Pi + Pa 0.29 s,
# + all 0.30 s; 900 + 3 x 4 x 450 steps, plus ~15 s of start-up and
# validation per run). Other jobs on the cores stretch it (2-4x at load 4).
#
#   bash tools/experiments/skd_nuclei.sh
#   # smoke test of the whole chain (a few minutes on 2 cores):
#   ITERS=4 TEACHER_ITERS=4 SEEDS=0 WORK_DIR=/tmp/skd_smoke UPDATE_README=0 \
#       bash tools/experiments/skd_nuclei.sh
set -euo pipefail

cd "$(dirname "$0")/../.."
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python; fi
fi
WORK_DIR=${WORK_DIR:-work_dirs/skd_nuclei}
ITERS=${ITERS:-}                  # default: the configs' 450
TEACHER_ITERS=${TEACHER_ITERS:-}  # default: the config's 900
SEEDS=${SEEDS:-"0 1 2"}
TEACHER_SEED=${TEACHER_SEED:-0}
UPDATE_README=${UPDATE_README:-1}
DATA=data/stardist_nuclei
CFG=experiments/skd
TEACHER_CFG=$CFG/pspnet_r34-d8_1xb8-900iter_stardist-64x64.py
declare -A STUDENT_CFG=(
    [baseline]=$CFG/pspnet_r18-d8_1xb8-450iter_stardist-64x64.py
    [pi]=$CFG/skd-pi_pspnet_r34-r18-d8_1xb8-450iter_stardist-64x64.py
    [pi-pa]=$CFG/skd-pi-pa_pspnet_r34-r18-d8_1xb8-450iter_stardist-64x64.py
    [all]=$CFG/skd_pspnet_r34-r18-d8_1xb8-450iter_stardist-64x64.py
)
VARIANTS="baseline pi pi-pa all"

if [ ! -d "$DATA/img_dir/train" ]; then
    echo "== converting the stardist nuclei image into $DATA"
    "$PYTHON" tools/dataset_converters/stardist_to_mmseg.py "$DATA"
fi

# train WORK CONFIG ITERS SEED [cfg-options...]   (ITERS empty: the config's)
train() {
    local work=$1 cfg=$2 iters=$3 seed=$4
    shift 4
    if [ -f "$work/done" ]; then
        echo "== $work: done, skipped"
        return
    fi
    local opts=(randomness.seed="$seed")
    if [ -n "$iters" ]; then
        opts+=(train_cfg.max_iters="$iters" train_cfg.val_interval="$iters"
               default_hooks.checkpoint.interval="$iters"
               default_hooks.logger.interval=1)
    fi
    echo "== $(date -u +%H:%M:%S) $work (seed $seed${iters:+, $iters iterations})"
    rm -rf "$work"
    mkdir -p "$(dirname "$work")"
    local start=$SECONDS
    "$PYTHON" tools/train.py "$cfg" --work-dir "$work" \
        --cfg-options "${opts[@]}" "$@" > "$work.log" 2>&1 || {
        echo "!! $work failed, see $work.log"; tail -n 20 "$work.log"; exit 1; }
    echo "$(( SECONDS - start ))" > "$work/done"
    echo "   $(( SECONDS - start )) s"
}

mkdir -p "$WORK_DIR"
train "$WORK_DIR/teacher" "$TEACHER_CFG" "$TEACHER_ITERS" "$TEACHER_SEED"
TEACHER_CKPT=$(cat "$WORK_DIR/teacher/last_checkpoint")
for seed in $SEEDS; do
    for variant in $VARIANTS; do
        extra=()
        if [ "$variant" != baseline ]; then
            extra=(model.teacher.checkpoint="$TEACHER_CKPT")
        fi
        train "$WORK_DIR/$variant/seed$seed" "${STUDENT_CFG[$variant]}" \
            "$ITERS" "$seed" "${extra[@]}"
    done
done

readme_args=()
if [ "$UPDATE_README" = 1 ]; then readme_args=(--readme configs/skd/README.md); fi
"$PYTHON" tools/experiments/collect_skd_nuclei.py "$WORK_DIR" "${readme_args[@]}"
