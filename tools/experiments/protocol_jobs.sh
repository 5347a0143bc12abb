# Sourced by the paired-protocol scripts (frskd_small_data.sh,
# reviewkd_short_schedule.sh), after resumable_run.sh. Needs PYTHON, WORK,
# JOBS (trainings at a time) and FIT_INDICES (the size of the training
# subset, tested as `fit.json`).
#
#   job NAME CONFIG SEED [cfg-options...]   train (resumable), then test the
#       final checkpoint on the test set (test.json) and on the training
#       subset (fit.json), except for a selection run (NAME select_*: the
#       test set is never read for it); the output goes to
#       $WORK/NAME/seedN.log
#   throttle                                wait until fewer than JOBS run
#   best_of RUN...                          the run with the best final
#       validation top-1 (seed 100; the test set is never read)
#   select_baseline_lr CONFIG               unless LR is set: train CONFIG
#       at each lr of LRS (seed 100; not with STAGE=compare) and set LR to
#       the best by final validation top-1

evaluate() {  # evaluate NAME SEED CONFIG [cfg-options...]
    local name=$1 seed=$2 config=$3
    shift 3
    local dir="$WORK/$name/seed$seed"
    local ckpt
    ckpt=$(ls "$dir"/epoch_*.pth | sort -V | tail -n 1)
    [ -f "$dir/test.json" ] || "$PYTHON" tools/test.py "$config" "$ckpt" \
        --work-dir "$dir/test" --out "$dir/test.json" --cfg-options "$@" \
        > "$dir/test.log" 2>&1
    [ -f "$dir/fit.json" ] || "$PYTHON" tools/test.py "$config" "$ckpt" \
        --work-dir "$dir/test" --out "$dir/fit.json" --cfg-options "$@" \
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
            [[ $name == select_* ]] ||
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
