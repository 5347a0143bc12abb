#!/usr/bin/env bash
# SKD on real data here: the stardist nuclei tiles (12 train / 4 val tiles of
# 128x128, background / nucleus; tools/dataset_converters/stardist_to_mmseg.py)
#
#   1. a PSPNet-R34 teacher trained from scratch (900 iterations);
#   2. PSPNet-R18 students, for every seed: baseline, + pixel-wise,
#      + pixel-wise + pair-wise, + all three (holistic critic), 450 each;
#   3. tools/experiments/collect_paired_protocol.py --preset skd-nuclei: mIoU
#      (mmseg's IoUMetric) per run -> $WORK_DIR/results.{json,md} and the
#      table in configs/skd/README.md.
#
# Runs one after the other on the CPU (or the GPU if there is one), each
# logging to $WORK_DIR/<run>/seed<N>.log. Finished runs (a `done` file in
# their work dir) are skipped and an interrupted one resumes from its last
# checkpoint, so the script can simply be restarted.
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
source tools/experiments/lib.sh
WORK_DIR=${WORK_DIR:-work_dirs/skd_nuclei}
WORK=$WORK_DIR
ITERS=${ITERS:-}                  # default: the configs' 450
TEACHER_ITERS=${TEACHER_ITERS:-}  # default: the config's 900
SEEDS=${SEEDS:-"0 1 2"}
TEACHER_SEED=${TEACHER_SEED:-0}
UPDATE_README=${UPDATE_README:-1}
DATA=data/stardist_nuclei
TEACHER_CFG=configs/vanilla/stardist/pspnet_r34-d8_1xb8-900iter_stardist-64x64.py
declare -A STUDENT_CFG=(
    [baseline]=configs/vanilla/stardist/pspnet_r18-d8_1xb8-450iter_stardist-64x64.py
    [pi]=configs/skd/skd-pi_pspnet_r34-r18-d8_1xb8-450iter_stardist-64x64.py
    [pi-pa]=configs/skd/skd-pi-pa_pspnet_r34-r18-d8_1xb8-450iter_stardist-64x64.py
    [all]=configs/skd/skd_pspnet_r34-r18-d8_1xb8-450iter_stardist-64x64.py
)
VARIANTS="baseline pi pi-pa all"
EVALUATE=0  # the table is the final validation mIoU

if [ ! -d "$DATA/img_dir/train" ]; then
    echo "== converting the stardist nuclei image into $DATA"
    "$PYTHON" tools/dataset_converters/stardist_to_mmseg.py "$DATA"
fi

iters() {  # the cfg-options of a shortened schedule (none for "")
    [ -z "$1" ] || echo "train_cfg.max_iters=$1 train_cfg.val_interval=$1" \
        "default_hooks.checkpoint.interval=$1 default_hooks.logger.interval=1"
}

job teacher "$TEACHER_CFG" "$TEACHER_SEED" $(iters "$TEACHER_ITERS")
TEACHER_CKPT=$(cat "$WORK/teacher/seed$TEACHER_SEED/last_checkpoint")
for seed in $SEEDS; do
    for variant in $VARIANTS; do
        extra=()
        if [ "$variant" != baseline ]; then
            extra=(model.teacher.checkpoint="$TEACHER_CKPT")
        fi
        job "$variant" "${STUDENT_CFG[$variant]}" "$seed" \
            $(iters "$ITERS") ${extra[@]+"${extra[@]}"}
    done
done

readme_args=()
if [ "$UPDATE_README" = 1 ]; then readme_args=(--readme configs/skd/README.md); fi
"$PYTHON" tools/experiments/collect_paired_protocol.py \
    --preset skd-nuclei "$WORK_DIR" ${readme_args[@]+"${readme_args[@]}"}
