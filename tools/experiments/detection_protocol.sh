#!/usr/bin/env bash
# The detection protocol (configs/reviewkd/README.md, "Detection protocol"):
# ReviewKD, CWD, PKD, FGD and MGD against one CE baseline and against
# ReviewKD, on the DeepForest tiles split into train / val / test
# (tools/dataset_converters/deepforest_to_coco.py --test-residue 1).
#   1. the FCOS R-50 (half width) teacher, once (seed 0, 200 epochs), fixed;
#   2. FCOS R-18 (half width) students (100 epochs) for the seeds SEEDS
#      (default "0 1 2 3 4"), seed by seed over the arms; each final
#      checkpoint is tested once on the test tiles (test.json);
#   3. tools/experiments/collect_paired_protocol.py: the paired comparisons
#      written into configs/reviewkd/README.md, the runs' logs and test json
#      copied to model_zoo/detection_protocol/, unless README=0.
#
#   bash tools/experiments/detection_protocol.sh
#
# Environment: PYTHON, WORK (default work_dirs/detection_protocol), SEEDS,
# ARMS (default: all six), JOBS (default 2: trainings at a time, one thread
# each), TINY=1 (a smoke test: 1 epoch on 4 tiles; needs README=0).
# Finished runs are skipped and interrupted ones resume, so the script can
# simply be restarted.
set -euo pipefail

cd "$(dirname "$0")/../.."
source tools/experiments/lib.sh
WORK=${WORK:-work_dirs/detection_protocol}
SEEDS=${SEEDS:-"0 1 2 3 4"}
ARMS=${ARMS:-"baseline reviewkd cwd pkd fgd mgd"}
JOBS=${JOBS:-2}
DATA=data/deepforest_coco_test
STEM=fcos_r50-r18-w32_fpn_1xb4-100e_deepforest.py
declare -A CONFIG=(
    [baseline]=configs/vanilla/deepforest/fcos_r18-w32_fpn_1xb4-100e_deepforest.py
    [reviewkd]=configs/reviewkd/reviewkd_$STEM
    [cwd]=configs/cwd/cwd_$STEM
    [pkd]=configs/pkd/pkd_$STEM
    [fgd]=configs/fgd/fgd_$STEM
    [mgd]=configs/mgd/mgd_$STEM
)
TEACHER_CONFIG=configs/vanilla/deepforest/fcos_r50-w32_fpn_1xb4-200e_deepforest.py
# the three splits of $DATA, for training, validation and the test
OPTS=(train_dataloader.dataset.data_root=$DATA
      val_dataloader.dataset.data_root=$DATA
      test_dataloader.dataset.data_root=$DATA
      test_dataloader.dataset.ann_file=annotations/instances_test.json
      val_evaluator.ann_file=$DATA/annotations/instances_val.json
      test_evaluator.ann_file=$DATA/annotations/instances_test.json)
if [ "${TINY:-0}" = 1 ]; then
    [ "${README:-1}" = 0 ] || { echo "TINY=1 needs README=0" >&2; exit 2; }
    OPTS+=(train_cfg.max_epochs=1 train_cfg.val_interval=1
           train_dataloader.dataset.indices=4)
fi

if [ ! -f "$DATA/annotations/instances_test.json" ]; then
    "$PYTHON" tools/dataset_converters/deepforest_to_coco.py "$DATA" --test-residue 1
fi

# run_protocol's hook: FGD and MGD start the student's head from the
# teacher's (their configs' init_cfg)
arm_options() {
    case $1 in
        fgd|mgd) echo "model.student.bbox_head.init_cfg.checkpoint=$2" ;;
    esac
}
run_protocol "$TEACHER_CONFIG"  # lib.sh: the teacher, then seeds x arms
COLLECT=(--metric coco/bbox_mAP --name 'the method'
         --arm baseline 'FCOS R-18/2 (CE)' --arm reviewkd '+ ReviewKD'
         --arm cwd '+ CWD' --arm pkd '+ PKD' --arm fgd '+ FGD' --arm mgd '+ MGD'
         --versus reviewkd cwd pkd fgd mgd --family-wise
         --teacher teacher 'FCOS R-50/2 teacher')
if [ "${README:-1}" = 1 ]; then
    COLLECT+=(--readme configs/reviewkd/README.md --mark detection-protocol
              --release model_zoo/detection_protocol)
fi
"$PYTHON" tools/experiments/collect_paired_protocol.py "$WORK" "${COLLECT[@]}"
