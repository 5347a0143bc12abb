#!/usr/bin/env bash
# The GPU check in one command, on a CUDA machine without network:
#   1. tools/gpu/setup_offline.sh: mmkd and its wheels (.wheelhouse/, built
#      beforehand with network by tools/gpu/build_wheelhouse.sh);
#   2. the CUDA tests (`pytest -m cuda` on tests/test_cuda and every other
#      test file with a cuda-marked test);
#   3. tools/benchmark.py rows on the GPU: FRSKD (CIFAR ResNet-18, batch 128)
#      and ReviewKD (ResNet32x4 -> ResNet8x4, batch 64), float32 / bfloat16 /
#      float16, each with its student and floor; then torch.compile if the
#      time budget still allows.
# Classification only: mmcv is installed without its compiled ops, which
# mmdet and mmseg need (see tools/gpu/setup_offline.sh).
#
# Usage: OUT=<folder> bash tools/gpu/check_gpu.sh [WHEELHOUSE]
# Writes $OUT/check_gpu.log (everything), $OUT/check_gpu.jsonl (one record
# per part with its exit status and seconds, and the benchmark records) and
# $OUT/pytest_cuda.xml. OUT defaults to work_dirs/gpu_check. Each part runs
# under `timeout`; the whole takes at most CHECK_BUDGET_S (480) seconds.
# Without CUDA it stops at step 1 with the set-up's message (exit 2).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${OUT:-$ROOT/work_dirs/gpu_check}"
BUDGET="${CHECK_BUDGET_S:-480}"
PYTHON="${PYTHON:-python3}"
export PYTHON
mkdir -p "$OUT"
LOG="$OUT/check_gpu.log"
JSONL="$OUT/check_gpu.jsonl"
: > "$LOG"
exec > >(tee -a "$LOG") 2>&1
TEE_PID=$!
finish() {  # exit with $1 once tee has written everything to the log
  exec 1>&- 2>&-
  wait "$TEE_PID" 2>/dev/null
  exit "$1"
}
cd "$ROOT"
start=$SECONDS

record() {  # part rc seconds
  printf '{"part": "%s", "rc": %d, "seconds": %d, "time": "%s"}\n' \
    "$1" "$2" "$3" "$(date -u +%FT%TZ)" >> "$JSONL"
}

part() {  # name budget_s command...: run under timeout, log and record
  local name=$1 budget=$2 left t0 rc
  shift 2
  left=$((BUDGET - (SECONDS - start)))
  [ "$budget" -gt "$left" ] && budget=$left
  if [ "$budget" -lt 20 ]; then
    echo "== $name: skipped (${left}s of the ${BUDGET}s budget left)"
    record "$name" 124 0
    return 124
  fi
  echo "== $name (at most ${budget}s): $*"
  t0=$SECONDS
  timeout --kill-after=10 "$budget" "$@"
  rc=$?
  echo "== $name: exit $rc after $((SECONDS - t0))s"
  record "$name" "$rc" $((SECONDS - t0))
  return $rc
}

echo "mmkd GPU check, $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
part setup 120 bash tools/gpu/setup_offline.sh "$@"
rc=$?
if [ $rc -ne 0 ]; then
  echo "check_gpu: the set-up failed (exit $rc); nothing else runs."
  finish $rc
fi
# shellcheck disable=SC1091
source "${MMKD_GPU_SITE:-$ROOT/.gpu_site}/env.sh"
"$PYTHON" -c 'import torch; print("GPU:", torch.cuda.get_device_name(0),
  "| torch", torch.__version__, "| CUDA", torch.version.cuda,
  "| cuDNN", torch.backends.cudnn.version())'

# every test file with a cuda-marked test (tests/test_cuda and any other);
# a file that needs mmdet/mmseg fails to collect and the others still run
mapfile -t CUDA_TESTS < <(grep -rlE --include='test_*.py' \
  'pytest\.mark\.cuda|mark\.cuda,' tests | sort)
part cuda_tests 240 "$PYTHON" -m pytest "${CUDA_TESTS[@]}" -m cuda \
  -p no:cacheprovider -o addopts= -rA --durations=20 --timeout=180 \
  --continue-on-collection-errors --junitxml="$OUT/pytest_cuda.xml"

FRSKD=configs/frskd/resnet18_cifar100.py
REVIEWKD=configs/reviewkd/reviewkd_resnet32x4-resnet8x4_1xb128-240e_cifar100.py
BENCH=("$PYTHON" tools/benchmark.py --device cuda --iters 20 --warmup 3
       --out "$JSONL")
part bench_frskd 90 "${BENCH[@]}" "$FRSKD" --batch-size 128 \
  --amp --amp-dtype bfloat16 float16
part bench_reviewkd 90 "${BENCH[@]}" "$REVIEWKD" --batch-size 64 \
  --random-teacher --amp --amp-dtype bfloat16 float16
part compile_reviewkd 120 "${BENCH[@]}" "$REVIEWKD" --batch-size 64 \
  --random-teacher --compile --modes distiller distiller_compiled
part compile_frskd 120 "${BENCH[@]}" "$FRSKD" --batch-size 128 \
  --compile --modes distiller distiller_compiled

# The benchmark rows, one line per record.
"$PYTHON" - "$JSONL" <<'PY'
import json
import sys

for line in open(sys.argv[1]):
    r = json.loads(line)
    if 'ms_per_iter' not in r:
        continue
    ms = ', '.join(f'{k} {v:.1f}' for k, v in r['ms_per_iter'].items())
    mem = ', '.join(f'{k} {v:.0f}' for k, v in r['memory_mb'].items())
    step = ', '.join(f'{k} {v:.0f}'
                     for k, v in (r.get('step_memory_mb') or {}).items())
    print(f"{r['config']} batch {r['batch_size']} on {r['device_name']}:\n"
          f"  ms/step: {ms}\n  peak MiB: {mem}\n  step MiB: {step}\n"
          f"  fp32: /floor {r['ratio_to_floor']}, /student "
          f"{r['ratio_to_student']}; amp: {r.get('amp_ratios')}; "
          f"compile first call {r.get('compile_first_call_ms')} ms")
PY
echo "check_gpu: done in $((SECONDS - start))s; $LOG, $JSONL"
grep -q '"rc": [1-9]' "$JSONL" && finish 1
finish 0
