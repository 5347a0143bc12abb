# The shell functions of the experiment scripts, sourced from the repository
# root (after `cd "$(dirname "$0")/../.."`):
#
#   source tools/experiments/lib.sh
#
# It sets PYTHON (default: .venv/bin/python if present, else python) and one
# intra-op thread per training (OMP_NUM_THREADS, MKL_NUM_THREADS; default 1:
# one process per core), and defines:
#
#   run NAME CONFIG SEED [cfg-options...]
#       train CONFIG with tools/train.py into $WORK/NAME/seed<SEED>, with
#       the --cfg-options of the array OPTS (may be unset) and the extra
#       tools/train.py flags of the array TRAIN_ARGS (may be unset, e.g.
#       TRAIN_ARGS=(--amp)). A finished run (its work dir holds `done`) is
#       skipped and an interrupted one resumes from its last checkpoint
#       (--resume), so a script can simply be restarted. `done` (the run's
#       wall seconds) is written only after tools/train.py exits 0: a failed
#       or killed training is never marked done.
#   evaluate NAME SEED CONFIG [cfg-options...]
#       test the last checkpoint of $WORK/NAME/seed<SEED> once on the test
#       set (test.json) and, when FIT_INDICES is set, on that training
#       subset (fit.json); each is skipped when its json is there.
#   job NAME CONFIG SEED [cfg-options...]
#       run, then evaluate (unless EVALUATE=0, or for a selection run, NAME
#       select_*: the test set is never read for it); the output goes to
#       $WORK/NAME/seed<SEED>.log. Returns 1 on a failure, after saying so.
#   throttle
#       wait until fewer than JOBS (default 2) background jobs run.
#   best_of RUN...
#       the run (of those named, seed 100) with the best final validation
#       top-1: a selection step, which never reads test.json.
#   select_baseline_lr CONFIG
#       unless LR is set: train CONFIG at each lr of LRS (seed 100; not with
#       STAGE=compare) and set LR to the best by final validation top-1.
#   run_protocol TEACHER_CONFIG
#       the runs of a paired protocol (nuclei_protocol.sh,
#       detection_protocol.sh): job teacher TEACHER_CONFIG 0, alone, with
#       JOBS intra-op threads; then, seed by seed over SEEDS and arm by arm
#       over ARMS, job ARM ${CONFIG[ARM]} SEED in the background, JOBS at a
#       time (throttle); waits for them all. Every arm but `baseline` gets
#       model.teacher.checkpoint=<the teacher's last checkpoint>, and each
#       arm the cfg-options that the script's optional hook
#       `arm_options ARM TEACHER_CHECKPOINT` prints, one per line. Needs the
#       associative array CONFIG (arm -> config). Returns 1 when the teacher
#       fails (a failed student is reported by its job and skipped).
#
# Needs WORK (and JOBS, LRS, FIT_INDICES, SEEDS, ARMS, CONFIG where those
# functions are used).

if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python; fi
fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}
JOBS=${JOBS:-2}
EVALUATE=${EVALUATE:-1}

run() {
    local name=$1 config=$2 seed=$3
    shift 3
    local dir="$WORK/$name/seed$seed" start=$SECONDS
    if [ -f "$dir/done" ]; then
        echo "[skip] $dir is complete"
        return
    fi
    echo "[$(date +%H:%M:%S)] $name seed $seed -> $dir"
    "$PYTHON" tools/train.py "$config" --work-dir "$dir" --resume \
        ${TRAIN_ARGS[@]+"${TRAIN_ARGS[@]}"} \
        --cfg-options randomness.seed="$seed" ${OPTS[@]+"${OPTS[@]}"} "$@" \
        || return  # not marked done (set -e does not act inside the
                   # callers' `&&` lists)
    echo $((SECONDS - start)) > "$dir/done"
}

evaluate() {
    local name=$1 seed=$2 config=$3
    shift 3
    local dir="$WORK/$name/seed$seed"
    local ckpt
    ckpt=$(cat "$dir/last_checkpoint")
    [ -f "$dir/test.json" ] || "$PYTHON" tools/test.py "$config" "$ckpt" \
        --work-dir "$dir/test" --out "$dir/test.json" \
        --cfg-options ${OPTS[@]+"${OPTS[@]}"} "$@" > "$dir/test.log" 2>&1
    [ -z "${FIT_INDICES:-}" ] || [ -f "$dir/fit.json" ] ||
        "$PYTHON" tools/test.py "$config" "$ckpt" \
        --work-dir "$dir/test" --out "$dir/fit.json" \
        --cfg-options ${OPTS[@]+"${OPTS[@]}"} "$@" \
        test_dataloader.dataset.split=train \
        test_dataloader.dataset.test_mode=False \
        test_dataloader.dataset.indices="$FIT_INDICES" > "$dir/fit.log" 2>&1
}

job() {
    local name=$1 config=$2 seed=$3
    shift 3
    mkdir -p "$WORK/$name"
    {
        run "$name" "$config" "$seed" "$@" && {
            [ "$EVALUATE" = 0 ] || [[ $name == select_* ]] ||
                evaluate "$name" "$seed" "$config" randomness.seed="$seed" "$@"
        }
    } > "$WORK/$name/seed$seed.log" 2>&1 || {
        echo "[$(date +%H:%M:%S)] FAILED $name seed $seed ($WORK/$name/seed$seed.log)" >&2
        return 1
    }
    echo "[$(date +%H:%M:%S)] done $name seed $seed"
}

throttle() { while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done; }

best_of() {
    "$PYTHON" tools/experiments/collect_paired_protocol.py "$WORK" --best "$@"
}

select_baseline_lr() {
    local config=$1 lr runs=()
    if [ -z "${LR:-}" ]; then
        if [ "${STAGE:-all}" != compare ]; then
            for lr in $LRS; do
                throttle
                job "select_baseline_lr$lr" "$config" 100 \
                    optim_wrapper.optimizer.lr="$lr" &
            done
            wait
        fi
        for lr in $LRS; do runs+=("select_baseline_lr$lr"); done
        LR=$(best_of "${runs[@]}" | sed 's/select_baseline_lr//')
    fi
    echo "baseline lr selected on the validation split: $LR"
}

run_protocol() {
    local teacher_config=$1 omp=$OMP_NUM_THREADS mkl=$MKL_NUM_THREADS
    local teacher seed arm status=0 extra=()
    for arm in $ARMS; do
        [[ -v CONFIG[$arm] ]] || {
            echo "unknown arm '$arm' (ARMS); known: ${!CONFIG[*]}" >&2
            return 2
        }
    done
    # the teacher: every thread, nothing beside it
    OMP_NUM_THREADS=$JOBS MKL_NUM_THREADS=$JOBS
    job teacher "$teacher_config" 0 || status=1
    OMP_NUM_THREADS=$omp MKL_NUM_THREADS=$mkl
    [ $status = 0 ] || return 1
    teacher=$(cat "$WORK/teacher/seed0/last_checkpoint")
    for seed in $SEEDS; do
        for arm in $ARMS; do
            extra=()
            [ "$arm" = baseline ] || extra=(model.teacher.checkpoint="$teacher")
            if declare -F arm_options > /dev/null; then
                mapfile -t -O ${#extra[@]} extra < <(
                    arm_options "$arm" "$teacher" | sed '/^$/d')
            fi
            throttle
            job "$arm" "${CONFIG[$arm]}" "$seed" ${extra[@]+"${extra[@]}"} &
        done
    done
    wait
}
