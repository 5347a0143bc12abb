#!/usr/bin/env bash
# Release one trained distiller as a plain student in the model zoo:
# convert (tools/convert_to_student.py), publish (tools/publish_model.py:
# training state dropped, sha256 prefix in the name), and keep the student
# config and the training log beside the weights.
#
#   bash tools/experiments/release.sh CONFIG CHECKPOINT TRAIN_LOG OUT_DIR NAME
# writes OUT_DIR/NAME-<sha8>.pth, OUT_DIR/NAME.py, OUT_DIR/NAME.log and prints
# the weights' path.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tools/experiments/lib.sh
CONFIG=$1 CKPT=$2 LOG=$3 OUT=$4 NAME=$5
mkdir -p "$OUT"
tmp=$(mktemp -d)
"$PYTHON" tools/convert_to_student.py "$CONFIG" "$CKPT" "$tmp/$NAME.pth" > /dev/null
cp "$tmp/$NAME.py" "$OUT/$NAME.py"
cp "$LOG" "$OUT/$NAME.log"
rm -f "$OUT/$NAME"-*.pth
"$PYTHON" tools/publish_model.py "$tmp/$NAME.pth" "$OUT/$NAME.pth"
rm -rf "$tmp"
