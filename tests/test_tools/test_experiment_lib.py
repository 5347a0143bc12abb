"""tools/experiments/lib.sh, the shell functions of the experiment scripts:
a finished run is skipped, a killed one is never marked done and is
restarted with --resume, a job tests its last checkpoint (and its training
subset with FIT_INDICES) except for a selection run, throttle keeps JOBS
trainings at a time.

The trainer is a stand-in interpreter (PYTHON) that records its command
line: tools/train.py and tools/test.py themselves are tested elsewhere
(test_kill_resume.py, test_train_distill.py); here the unit is the shell
logic around them."""
import json
import os
import os.path as osp
import subprocess
import textwrap

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

# A stand-in for `python`: appends its arguments (one line, tab-separated)
# to $CALLS; tools/train.py writes <work-dir>/last_checkpoint, or kills
# itself (SIGKILL) when its config is $KILL_CONFIG; tools/test.py writes the
# --out json. With $THREADS set, each call also appends its config and
# OMP_NUM_THREADS there.
STAND_IN = textwrap.dedent(r'''
    #!/usr/bin/env bash
    (IFS=$'\t'; echo "start $(date +%s.%N) $*") >> "$CALLS"
    script=$1; shift
    config=$1; shift
    while [ $# -gt 0 ]; do
        case $1 in
            --work-dir) dir=$2; shift ;;
            --out) out=$2; shift ;;
        esac
        shift
    done
    [ -z "${THREADS:-}" ] || echo "$config $OMP_NUM_THREADS" >> "$THREADS"
    sleep "${SLEEP:-0}"
    case $script in
        tools/train.py)
            mkdir -p "$dir"
            [ "$config" != "${KILL_CONFIG:-}" ] || kill -9 $$
            echo "$dir/iter_1.pth" > "$dir/last_checkpoint" ;;
        tools/test.py)
            echo '{"accuracy/top1": 50.0}' > "$out" ;;
    esac
    echo "end $(date +%s.%N)" >> "$CALLS"
''').lstrip()


@pytest.fixture
def shell(tmp_path):
    """``shell(script, **env)``: run ``script`` in bash after sourcing
    lib.sh from the repository root; returns (process, recorded calls)."""
    python = tmp_path / 'python'
    python.write_text(STAND_IN)
    python.chmod(0o755)
    calls = tmp_path / 'calls'

    def run(script, **env):
        calls.write_text('')
        proc = subprocess.run(
            ['bash', '-c', 'set -euo pipefail\n'
             'source tools/experiments/lib.sh\n' + script],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
            env=dict(os.environ, PYTHON=str(python), CALLS=str(calls),
                     WORK=str(tmp_path / 'work'), **env))
        lines = calls.read_text().splitlines()
        return proc, [line.split(' ', 2)[2].split('\t')
                      for line in lines if line.startswith('start ')]

    return run


def test_run_trains_resumably_once_and_marks_done(shell, tmp_path):
    script = ('OPTS=(a.b=1); TRAIN_ARGS=(--amp)\n'
              'run arm cfg.py 3 c.d=2\nrun arm cfg.py 3 c.d=2\n')
    proc, calls = shell(script)
    assert proc.returncode == 0, proc.stderr
    seed_dir = str(tmp_path / 'work' / 'arm' / 'seed3')
    assert calls == [[
        'tools/train.py', 'cfg.py', '--work-dir', seed_dir, '--resume',
        '--amp', '--cfg-options', 'randomness.seed=3', 'a.b=1', 'c.d=2'
    ]]  # the second run is skipped
    assert f'[skip] {seed_dir} is complete' in proc.stdout
    assert open(osp.join(seed_dir, 'done')).read().strip().isdigit()


def test_a_killed_training_is_not_marked_done_and_resumes(shell, tmp_path):
    seed_dir = tmp_path / 'work' / 'arm' / 'seed0'
    proc, calls = shell('job arm killed.py 0', KILL_CONFIG='killed.py')
    assert proc.returncode == 1
    assert 'FAILED arm seed 0' in proc.stderr
    assert len(calls) == 1 and not (seed_dir / 'done').exists()
    assert not (seed_dir / 'test.json').exists()  # nothing tested
    # restarted: trained again (resuming), marked done, tested
    proc, calls = shell('job arm killed.py 0')
    assert proc.returncode == 0, proc.stderr
    assert calls[0][:2] == ['tools/train.py', 'killed.py']
    assert '--resume' in calls[0] and (seed_dir / 'done').exists()
    assert json.loads((seed_dir / 'test.json').read_text()) == {
        'accuracy/top1': 50.0}


def test_job_tests_the_last_checkpoint_and_the_training_subset(
        shell, tmp_path):
    work = tmp_path / 'work'
    script = ('OPTS=(data.root=x)\nFIT_INDICES=1000\n'
              'job arm cfg.py 1 lr=0.1\njob select_arm cfg.py 100 lr=0.1\n'
              'EVALUATE=0 job plain cfg.py 1\n')
    proc, calls = shell(script)
    assert proc.returncode == 0, proc.stderr
    ckpt = str(work / 'arm' / 'seed1' / 'iter_1.pth')
    tests = [c for c in calls if c[0] == 'tools/test.py']
    assert [c[:2] for c in calls if c[0] == 'tools/train.py'] == [
        ['tools/train.py', 'cfg.py']] * 3
    # the test set, then the training subset; none for the selection run
    # or with EVALUATE=0
    assert len(tests) == 2
    options = ['--cfg-options', 'data.root=x', 'randomness.seed=1',
               'lr=0.1']
    assert tests[0] == ['tools/test.py', 'cfg.py', ckpt, '--work-dir',
                        str(work / 'arm' / 'seed1' / 'test'), '--out',
                        str(work / 'arm' / 'seed1' / 'test.json')] + options
    assert tests[1][-len(options) - 3:] == options + [
        'test_dataloader.dataset.split=train',
        'test_dataloader.dataset.test_mode=False',
        'test_dataloader.dataset.indices=1000']
    assert (work / 'arm' / 'seed1' / 'fit.json').exists()
    assert not (work / 'select_arm' / 'seed100' / 'test.json').exists()
    assert not (work / 'plain' / 'seed1' / 'test.json').exists()
    # the output of each job is in its log, the console says it is done
    assert 'done arm seed 1' in proc.stdout
    assert 'arm seed 1 ->' in (work / 'arm' / 'seed1.log').read_text()


def test_throttle_keeps_jobs_trainings_at_a_time(shell, tmp_path):
    script = ('for s in 0 1 2 3 4; do throttle; '
              'EVALUATE=0 job arm cfg.py $s & done; wait\n')
    proc, _ = shell(script, JOBS='2', SLEEP='0.4')
    assert proc.returncode == 0, proc.stderr
    events = []
    for line in (tmp_path / 'calls').read_text().splitlines():
        kind, stamp = line.split(' ')[:2]
        events.append((float(stamp), 1 if kind == 'start' else -1))
    running = peak = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):
        running += step
        peak = max(peak, running)
    assert peak == 2 and len(events) == 10


def test_run_protocol_trains_the_teacher_alone_then_seeds_by_arms(
        shell, tmp_path):
    """The teacher first, with JOBS threads and nothing beside it; then each
    seed x arm with the teacher's checkpoint (not the baseline) and the
    script's arm_options hook; at most JOBS trainings at a time."""
    script = ('declare -A CONFIG=([baseline]=b.py [kd]=kd.py [fgd]=fgd.py)\n'
              'arm_options() { [ "$1" != fgd ] || echo "head.init=$2"; }\n'
              'run_protocol t.py\n')
    threads = tmp_path / 'threads'
    proc, calls = shell(
        script,
        SEEDS='0 1',
        ARMS='baseline kd fgd',
        JOBS='2',
        EVALUATE='0',
        SLEEP='0.2',
        THREADS=str(threads),
        OMP_NUM_THREADS='1')
    assert proc.returncode == 0, proc.stderr
    work = tmp_path / 'work'
    ckpt = str(work / 'teacher' / 'seed0' / 'iter_1.pth')
    assert calls[0][:2] == ['tools/train.py', 't.py']
    teacher_opt = f'model.teacher.checkpoint={ckpt}'
    extra = {
        'b.py': (),
        'kd.py': (teacher_opt, ),
        'fgd.py': (teacher_opt, f'head.init={ckpt}')
    }
    expected = sorted((config, f'randomness.seed={seed}', options)
                      for config, options in extra.items() for seed in (0, 1))
    options = [c[c.index('--cfg-options') + 1:] for c in calls[1:]]
    assert sorted((c[1], o[0], tuple(o[1:]))
                  for c, o in zip(calls[1:], options)) == expected
    # the teacher with JOBS threads, the students with one each
    assert sorted(threads.read_text().splitlines()) == sorted(
        ['t.py 2'] + [f'{c}.py 1' for c in ('b', 'kd', 'fgd')] * 2)
    events = []
    for line in (tmp_path / 'calls').read_text().splitlines():
        kind, stamp = line.split(' ')[:2]
        events.append((float(stamp), 1 if kind == 'start' else -1))
    events.sort(key=lambda e: (e[0], e[1]))
    # the teacher ends before any student starts
    assert events[0][1] == 1 and events[1][1] == -1
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    assert peak == 2 and len(events) == 14
    for arm in ('baseline', 'kd', 'fgd'):
        assert (work / arm / 'seed1' / 'done').exists()


def test_run_protocol_stops_when_the_teacher_fails(shell, tmp_path):
    script = ('declare -A CONFIG=([baseline]=b.py)\n'
              'run_protocol t.py || echo "returned $?"\n')
    proc, calls = shell(
        script, SEEDS='0', ARMS='baseline', EVALUATE='0', KILL_CONFIG='t.py')
    assert 'returned 1' in proc.stdout
    assert [c[1] for c in calls] == ['t.py']  # no student trained


def test_run_protocol_refuses_an_unknown_arm_before_training(shell, tmp_path):
    script = ('declare -A CONFIG=([baseline]=b.py [kd]=kd.py)\n'
              'run_protocol t.py || echo "returned $?"\n')
    proc, calls = shell(script, SEEDS='0', ARMS='baseline kdd', EVALUATE='0')
    assert 'returned 2' in proc.stdout
    assert "unknown arm 'kdd'" in proc.stderr
    assert not calls  # not even the teacher


def test_run_protocol_restores_the_thread_counts_when_the_teacher_fails(
        shell, tmp_path):
    script = ('declare -A CONFIG=([baseline]=b.py)\n'
              'run_protocol t.py || '
              'echo "$OMP_NUM_THREADS $MKL_NUM_THREADS"\n')
    proc, _ = shell(
        script, SEEDS='0', ARMS='baseline', EVALUATE='0', KILL_CONFIG='t.py',
        JOBS='2', OMP_NUM_THREADS='1', MKL_NUM_THREADS='3')
    assert proc.stdout.strip().splitlines()[-1] == '1 3'
