"""Pictures of a distiller's taps on one image.

Builds the distiller of a config (optionally with its trained checkpoint and
the teacher's), runs one forward in eval mode on an image read through the
config's test pipeline and the student's data preprocessor, with the taps
on, runs the connectors, and draws a PNG grid: one row per feature pair that
a loss compares (student feature, teacher feature, connector output; e.g.
FitNets' student stage / teacher hint / regressor output, FRSKD's student
stage / self-teacher feature), or with ``--rows taps`` one row per tap. Each
feature map ``(C, H, W)`` of the image is drawn as its channel mean, or as
the attention map of AT (mean of squares over channels, L2-normalised over
the positions, as ``ATLoss`` compares it), with one colour scale per row.

Usage::

    python tools/visualize_taps.py CONFIG IMAGE [--checkpoint DISTILLER.pth]
        [--teacher-checkpoint TEACHER.pth | --random-teacher]
        [--map auto|mean|attention] [--rows pairs|taps] [--out taps.png]
        [--cfg-options key=value ...]

``--map auto`` (default) draws attention maps for the rows of an ``ATLoss``
and channel means otherwise. ``--random-teacher`` builds the teacher from its
config with random weights (to look at the wiring before a teacher is
trained). docs/en/visualization.md shows an example.
"""
import argparse
import copy
import os
import os.path as osp
import tempfile
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope

#: The columns of the grid, left to right.
COLUMNS = ('student', 'teacher', 'connector')
#: Size of one cell of the grid, in inches (the PNG is
#: ``len(COLUMNS) * CELL_W * dpi`` by ``rows * CELL_H * dpi`` pixels).
CELL_W, CELL_H = 3.2, 3.0
MAP_KINDS = ('mean', 'attention')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Draw the features a distiller taps, pairs and '
        'connects, for one image.')
    parser.add_argument('config', help='distiller config file')
    parser.add_argument('image', help='image file')
    parser.add_argument(
        '--checkpoint', help='distiller checkpoint (student + connectors)')
    teacher = parser.add_mutually_exclusive_group()
    teacher.add_argument(
        '--teacher-checkpoint',
        help='teacher checkpoint (default: the one the config names)')
    teacher.add_argument(
        '--random-teacher',
        action='store_true',
        help='build the teacher with random weights instead of loading one')
    parser.add_argument(
        '--map',
        choices=('auto', ) + MAP_KINDS,
        default='auto',
        help='channel mean, AT attention (mean of squares over channels, '
        'L2-normalised over positions), or auto: attention for the rows of '
        'an ATLoss, mean otherwise')
    parser.add_argument(
        '--rows',
        choices=('pairs', 'taps'),
        default='pairs',
        help='one row per feature pair of a loss (default), or per tap')
    parser.add_argument('--out', default='taps.png', help='output PNG')
    parser.add_argument('--dpi', type=int, default=100)
    parser.add_argument(
        '--device',
        default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, as tools/train.py')
    return parser.parse_args(argv)


# ------------------------------------------------------------- building
def _random_teacher_checkpoint(teacher: dict, work_dir: str) -> str:
    """Save a randomly initialised teacher of ``teacher``'s config."""
    from mmkd.models.utils import build_task_model, load_model_config
    if teacher.get('config'):
        tcfg = load_model_config(teacher['config'])
        model_cfg = dict(tcfg.model)
        if tcfg.get('default_scope') and not model_cfg.get('_scope_'):
            model_cfg['_scope_'] = tcfg.default_scope
    else:
        model_cfg = dict(teacher['model'])
    # init_weights() is not called: no pretrained backbone is downloaded;
    # the layers keep PyTorch's random initialisation.
    path = osp.join(work_dir, 'random_teacher.pth')
    torch.save({'state_dict': build_task_model(model_cfg).state_dict()},
               path)
    return path


def build_distiller(cfg: Config,
                    checkpoint: Optional[str] = None,
                    teacher_checkpoint: Optional[str] = None,
                    random_teacher: bool = False,
                    device: str = 'cpu') -> torch.nn.Module:
    """The config's distiller in eval mode on ``device``.

    Args:
        cfg: A distiller config (``model.type`` a ``Distiller``).
        checkpoint: A distiller checkpoint (``student.*`` and
            ``connectors.*`` weights, as training saves them), loaded
            strictly.
        teacher_checkpoint: Replaces ``model.teacher.checkpoint``.
        random_teacher: Build the teacher with random weights.
    """
    from mmengine.runner import load_checkpoint
    from mmengine.utils import import_modules_from_strings

    from mmkd.registry import MODELS
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    init_default_scope(cfg.get('default_scope', 'mmkd'))
    model_cfg = copy.deepcopy(cfg.model)
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    if 'taps' not in model_cfg or 'student' not in model_cfg:
        raise ValueError(
            f"{cfg.filename}: model is a {model_cfg.get('type')}, not an "
            'mmkd distiller (no student/taps): there is nothing to tap')
    teacher = model_cfg.get('teacher')
    if teacher is not None and random_teacher:
        teacher['checkpoint'] = _random_teacher_checkpoint(
            teacher, tempfile.mkdtemp(prefix='mmkd_taps_'))
    elif teacher is not None and teacher_checkpoint:
        teacher['checkpoint'] = teacher_checkpoint
    elif teacher is None and (random_teacher or teacher_checkpoint):
        raise ValueError(f'{cfg.filename} has no teacher (self-distillation)'
                         '; drop --teacher-checkpoint / --random-teacher')
    model = MODELS.build(model_cfg)
    if checkpoint:
        load_checkpoint(model, checkpoint, map_location='cpu', strict=True)
    return model.to(device).eval()


def _input_channels(model: torch.nn.Module) -> int:
    for module in model.student.modules():
        if isinstance(module, torch.nn.Conv2d):
            return module.in_channels
    return 3


def _test_pipeline(cfg: Config) -> List[dict]:
    for key in ('test_dataloader', 'val_dataloader'):
        dataset = (cfg.get(key) or {}).get('dataset')
        while dataset is not None and 'pipeline' not in dataset:
            dataset = dataset.get('dataset')  # dataset wrappers
        if dataset is not None:
            return copy.deepcopy(list(dataset['pipeline']))
    raise ValueError(f'{cfg.filename} has no test/val dataloader pipeline to '
                     'read the image with')


def prepare_batch(cfg: Config, model: torch.nn.Module,
                  image: str) -> Dict[str, Any]:
    """``image`` through the config's test pipeline (its annotation loaders
    dropped) and the student's data preprocessor: ``dict(inputs,
    data_samples)`` of a batch of one."""
    import mmcv
    from mmengine.dataset import Compose, pseudo_collate
    if not osp.isfile(image):
        raise FileNotFoundError(f'image {image!r} does not exist')
    pipeline = [
        t for t in _test_pipeline(cfg)
        if not str(t['type']).split('.')[-1].startswith('LoadAnnotations')
    ]
    if pipeline and 'LoadImageFrom' in str(pipeline[0]['type']):
        results = dict(img_path=image)
    else:  # e.g. Fashion-MNIST: the dataset itself gives the array
        flag = 'grayscale' if _input_channels(model) == 1 else 'color'
        img = mmcv.imread(image, flag=flag)
        results = dict(img=img, img_shape=img.shape[:2],
                       ori_shape=img.shape[:2], img_path=image)
    scope = cfg.get('default_scope')
    if scope:
        init_default_scope(scope)
    data = Compose(pipeline)(results)
    return model.data_preprocessor(pseudo_collate([data]), False)


# ------------------------------------------------------------- recording
@torch.no_grad()
def record(model: torch.nn.Module, batch: Dict[str, Any]) -> Dict[str, Any]:
    """The tap values and connector outputs of one forward (eval mode)."""
    return model.extract_features(batch['inputs'], batch['data_samples'])


def _side(model, source: str) -> Optional[str]:
    """'student' / 'teacher' for a tap, 'connector' for a connector output,
    None for anything else (ground truth)."""
    if source in model.taps:
        return model.taps[source].model
    if source.split('.', 1)[0] in model.graph.connector_cfgs:
        return 'connector'
    return None


def _expand(model, source, values) -> List[Tuple[str, Optional[str], Any]]:
    """``(label, side, tensor)`` of a source; lists (several sources, or a
    tap/connector giving a list of maps) are flattened in order."""
    if not isinstance(source, str):
        return [item for s in source for item in _expand(model, s, values)]
    value = model.graph.resolve(source, values)
    side = _side(model, source)
    if torch.is_tensor(value):
        return [(source, side, value)]
    if isinstance(value, (list, tuple)):
        return [(f'{source}[{i}]', side, v) for i, v in enumerate(value)
                if torch.is_tensor(v)]
    return []


def _is_map(value) -> bool:
    return torch.is_tensor(value) and value.dim() == 4


def pair_features(model, values: Dict[str, Any]) -> List[dict]:
    """The feature pairs the losses compare, one per row.

    Each loss with ``preds_S`` and ``preds_T`` inputs gives one row per
    element of its (flattened) inputs; a side that is a connector output is
    shown in the connector column, with the connector's own input (the
    student tap it transforms, the same element of a list) in the student
    column. Rows are ``dict(label, loss_type, cells={column: (name,
    tensor)})`` with only ``(B, C, H, W)`` maps; a row repeated by two
    losses is kept once.
    """
    graph = model.graph
    rows, seen = [], set()
    for name, cfg in graph.loss_cfgs.items():
        mapping = cfg['inputs']
        if 'preds_S' not in mapping or 'preds_T' not in mapping:
            continue
        s_items = _expand(model, mapping['preds_S'], values)
        t_items = _expand(model, mapping['preds_T'], values)
        if len(s_items) != len(t_items):
            continue
        for i, pair in enumerate(zip(s_items, t_items)):
            cells = {}
            for label, side, tensor in pair:
                if side is not None and _is_map(tensor):
                    cells.setdefault(side, (label, tensor))
            if 'connector' in cells and 'student' not in cells:
                root = cells['connector'][0].split('.')[0].split('[')[0]
                inputs = _expand(
                    model, graph.connector_cfgs[root]['inputs'], values)
                inputs = [x for x in inputs if x[1] == 'student']
                pick = (inputs[i] if len(inputs) == len(s_items) else
                        inputs[0] if len(inputs) == 1 else None)
                if pick is not None and _is_map(pick[2]):
                    cells['student'] = (pick[0], pick[2])
            if len(cells) < 2:
                continue
            key = tuple(cells.get(c, ('', None))[0] for c in COLUMNS)
            if key in seen:
                continue
            seen.add(key)
            rows.append(dict(label=name, loss_type=cfg['type'], cells=cells))
    return rows


def tap_features(model, values: Dict[str, Any]) -> List[dict]:
    """One row per tap map (a tap giving a list: one row per element)."""
    rows = []
    for name in model.taps:
        for label, side, tensor in _expand(model, name, values):
            if _is_map(tensor):
                rows.append(
                    dict(label=label, loss_type=None,
                         cells={side: (label, tensor)}))
    return rows


def feature_map(feature: torch.Tensor, kind: str) -> np.ndarray:
    """``(H, W)`` map of the first sample of ``(B, C, H, W)``: the channel
    mean, or AT's attention map as ``ATLoss`` compares it (the mean of
    squares over channels, L2-normalised over the ``H * W`` positions)."""
    if kind not in MAP_KINDS:
        raise ValueError(f'map kind must be one of {MAP_KINDS}, got {kind!r}')
    x = feature[0].detach().float().cpu()
    if kind == 'mean':
        return x.mean(0).numpy()
    a = x.pow(2).mean(0)
    return (a / a.norm().clamp_min(1e-12)).numpy()


def tap_maps(model,
             batch: Dict[str, Any],
             rows: str = 'pairs',
             map_kind: str = 'auto') -> List[dict]:
    """What the grid draws: per row ``dict(label, loss_type, map,
    cells={column: dict(name, shape, array)})``; ``array`` is the ``(H, W)``
    map of the first sample.

    Args:
        rows: ``'pairs'`` (the losses' feature pairs; the taps if no loss
            compares maps) or ``'taps'``.
        map_kind: ``'mean'``, ``'attention'`` or ``'auto'`` (attention for
            the rows of an ``ATLoss``).
    """
    if rows not in ('pairs', 'taps'):
        raise ValueError(f"rows must be 'pairs' or 'taps', got {rows!r}")
    if map_kind not in ('auto', ) + MAP_KINDS:
        raise ValueError(f'map_kind must be auto, mean or attention, got '
                         f'{map_kind!r}')
    values = record(model, batch)
    found = pair_features(model, values) if rows == 'pairs' else []
    if not found:
        found = tap_features(model, values)
    if not found:
        raise ValueError('no tap of this distiller gives a (B, C, H, W) '
                         'feature map: there is nothing to draw')
    out = []
    for row in found:
        kind = map_kind
        if kind == 'auto':
            kind = ('attention' if str(row['loss_type']).split('.')[-1]
                    == 'ATLoss' else 'mean')
        out.append(
            dict(
                label=row['label'],
                loss_type=row['loss_type'],
                map=kind,
                cells={
                    col: dict(
                        name=name,
                        shape=tuple(t.shape),
                        array=feature_map(t, kind))
                    for col, (name, t) in row['cells'].items()
                }))
    return out


# -------------------------------------------------------------- drawing
def plot_tap_maps(rows: List[dict], out: str, dpi: int = 100):
    """Draw ``rows`` (from :func:`tap_maps`) as a grid PNG at ``out``.

    Returns the matplotlib figure (closed): ``len(rows)`` x 3 axes, one
    colour scale per row."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(
        len(rows),
        len(COLUMNS),
        figsize=(len(COLUMNS) * CELL_W, len(rows) * CELL_H),
        squeeze=False)
    for r, row in enumerate(rows):
        arrays = [c['array'] for c in row['cells'].values()]
        vmin = min(float(a.min()) for a in arrays)
        vmax = max(float(a.max()) for a in arrays)
        image = None
        for c, col in enumerate(COLUMNS):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            cell = row['cells'].get(col)
            if cell is None:
                ax.set_title(f'{col}: -', fontsize=8)
                ax.set_frame_on(False)
                continue
            image = ax.imshow(
                cell['array'], cmap='viridis', vmin=vmin, vmax=vmax)
            shape = 'x'.join(str(s) for s in cell['shape'][1:])
            ax.set_title(f"{col}: {cell['name']}\n({shape})", fontsize=8)
        loss = f" ({row['loss_type']})" if row.get('loss_type') else ''
        axes[r][0].set_ylabel(
            f"{row['label']}{loss}\n{row['map']}", fontsize=8)
        fig.colorbar(image, ax=list(axes[r]), fraction=0.03, pad=0.02)
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return fig


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    from mmkd.utils import filter_known_warnings
    filter_known_warnings()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model = build_distiller(cfg, args.checkpoint, args.teacher_checkpoint,
                            args.random_teacher, args.device)
    batch = prepare_batch(cfg, model, args.image)
    rows = tap_maps(model, batch, args.rows, args.map)
    plot_tap_maps(rows, args.out, args.dpi)
    for row in rows:
        cells = ', '.join(f"{col}={c['name']}{c['shape']}"
                          for col, c in row['cells'].items())
        print(f"{row['label']} ({row['map']}): {cells}")
    print(f'wrote {args.out} ({len(rows)} rows)')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
