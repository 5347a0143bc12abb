#!/usr/bin/env bash
# The nuclei protocol (configs/skd/README.md, "Nuclei protocol"): every
# segmentation distiller against one CE baseline and against SKD, on the
# stardist nuclei tiles split into 8 train / 4 val / 4 test tiles of 128x128
# (tools/dataset_converters/stardist_to_mmseg.py --test-offset 2).
#   1. the PSPNet-R34 teacher, once (seed 0, 900 iterations), fixed;
#   2. PSPNet-R18 students (450 iterations) for the seeds SEEDS (default
#      "0 1 2 3 4"), seed by seed over the arms: the CE baseline, SKD
#      pixel-wise, + pair-wise, + holistic, CIRKD, CWD and MGD; each final
#      checkpoint is tested once on the 4 test tiles (test.json);
#   3. tools/experiments/collect_paired_protocol.py: the paired comparisons
#      written into configs/skd/README.md, the runs' logs and test json
#      copied to model_zoo/nuclei_protocol/, unless README=0.
#
#   bash tools/experiments/nuclei_protocol.sh
#
# Environment: PYTHON, WORK (default work_dirs/nuclei_protocol), SEEDS,
# ARMS (default: all seven), JOBS (default 2: trainings at a time, one thread
# each), ITERS (a smoke test: every run this many iterations; not with
# README=1, the default). Finished runs are skipped and interrupted ones resume, so the script
# can simply be restarted.
set -euo pipefail

cd "$(dirname "$0")/../.."
source tools/experiments/lib.sh
WORK=${WORK:-work_dirs/nuclei_protocol}
SEEDS=${SEEDS:-"0 1 2 3 4"}
ARMS=${ARMS:-"baseline skd-pi skd-pi-pa skd cirkd cwd mgd"}
JOBS=${JOBS:-2}
DATA=data/stardist_nuclei_test
STEM=pspnet_r34-r18-d8_1xb8-450iter_stardist-64x64.py
declare -A CONFIG=(
    [baseline]=configs/vanilla/stardist/pspnet_r18-d8_1xb8-450iter_stardist-64x64.py
    [skd-pi]=configs/skd/skd-pi_$STEM
    [skd-pi-pa]=configs/skd/skd-pi-pa_$STEM
    [skd]=configs/skd/skd_$STEM
    [cirkd]=configs/cirkd/cirkd_$STEM
    [cwd]=configs/cwd/cwd_$STEM
    [mgd]=configs/mgd/mgd_$STEM
)
TEACHER_CONFIG=configs/vanilla/stardist/pspnet_r34-d8_1xb8-900iter_stardist-64x64.py
# the three splits of $DATA, for training, validation and the test
OPTS=(train_dataloader.dataset.data_root=$DATA
      val_dataloader.dataset.data_root=$DATA
      test_dataloader.dataset.data_root=$DATA
      test_dataloader.dataset.data_prefix.img_path=img_dir/test
      test_dataloader.dataset.data_prefix.seg_map_path=ann_dir/test)
if [ -n "${ITERS:-}" ]; then
    [ "${README:-1}" = 0 ] || { echo "ITERS needs README=0" >&2; exit 2; }
    OPTS+=(train_cfg.max_iters="$ITERS" train_cfg.val_interval="$ITERS"
           default_hooks.checkpoint.interval="$ITERS")
fi

if [ ! -d "$DATA/img_dir/test" ]; then
    "$PYTHON" tools/dataset_converters/stardist_to_mmseg.py "$DATA" --test-offset 2
fi

run_protocol "$TEACHER_CONFIG"  # lib.sh: the teacher, then seeds x arms
COLLECT=(--metric mIoU --name 'the method'
         --arm baseline 'PSPNet-R18 (CE)' --arm skd-pi '+ SKD pixel-wise'
         --arm skd-pi-pa '+ SKD pixel + pair-wise'
         --arm skd '+ SKD pixel + pair-wise + holistic'
         --arm cirkd '+ CIRKD' --arm cwd '+ CWD' --arm mgd '+ MGD'
         --versus skd cirkd cwd mgd --family-wise)
if [ "${README:-1}" = 1 ]; then
    COLLECT+=(--readme configs/skd/README.md --mark nuclei-protocol
              --release model_zoo/nuclei_protocol)
fi
"$PYTHON" tools/experiments/collect_paired_protocol.py "$WORK" "${COLLECT[@]}"
