# Sourced by the experiment scripts: `run NAME CONFIG SEED [cfg-options...]`
# trains CONFIG with tools/train.py into $WORK/NAME/seed<SEED>, with the
# extra options of the array OPTS (may be empty) and the extra tools/train.py
# flags of the array TRAIN_ARGS (may be unset, e.g. TRAIN_ARGS=(--amp)). A
# finished run (its work
# dir holds `done`) is skipped and an interrupted one resumes from its last
# checkpoint, so a script can simply be restarted. Needs PYTHON and WORK.
run() {
    local name=$1 config=$2 seed=$3
    shift 3
    local dir="$WORK/$name/seed$seed"
    if [ -f "$dir/done" ]; then
        echo "[skip] $dir is complete"
        return
    fi
    echo "[$(date +%H:%M:%S)] $name seed $seed -> $dir"
    "$PYTHON" tools/train.py "$config" --work-dir "$dir" --resume \
        ${TRAIN_ARGS[@]+"${TRAIN_ARGS[@]}"} --cfg-options randomness.seed="$seed" ${OPTS[@]+"${OPTS[@]}"} "$@" \
        || return  # a failed or killed training is not marked done (set -e
                   # does not act inside the callers' `&&` lists)
    touch "$dir/done"
}
