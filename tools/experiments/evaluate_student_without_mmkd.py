"""Evaluate a released student with its task library alone (mmkd blocked).

The release check of mmkd: the config and weights written by
``tools/convert_to_student.py`` / ``tools/publish_model.py`` are evaluated by
MMEngine's Runner with the task library's own dataset and metric, in a
process where any import of mmkd fails. The metrics equal the training
run's last validation.

Usage::

    python tools/experiments/evaluate_student_without_mmkd.py STUDENT.py \
        STUDENT.pth [--work-dir DIR] [--out metrics.json]
"""
import argparse
import json
import sys
import tempfile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='student config (convert_to_student)')
    parser.add_argument('checkpoint', help='student weights')
    parser.add_argument('--work-dir', default=None)
    parser.add_argument('--out', default=None, help='write the metrics here')
    args = parser.parse_args()

    sys.modules['mmkd'] = None  # any import of mmkd now fails
    import warnings
    warnings.filterwarnings('ignore')
    from mmengine.config import Config
    from mmengine.runner import Runner

    cfg = Config.fromfile(args.config)
    cfg.load_from = args.checkpoint
    cfg.work_dir = args.work_dir or tempfile.mkdtemp()
    cfg.launcher = 'none'
    metrics = Runner.from_cfg(cfg).test()
    metrics = {k: float(v) for k, v in metrics.items()}
    print(json.dumps(metrics, indent=2))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(metrics, f, indent=2)


if __name__ == '__main__':
    main()
