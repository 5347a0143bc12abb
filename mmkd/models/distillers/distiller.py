"""The task-agnostic distiller: a student, an optional frozen teacher, taps,
connectors and losses."""
import copy
import inspect
from typing import Any, Dict, List, Optional, Sequence, Union

import torch
from mmengine.model import BaseModel
from torch import nn

from mmkd.registry import MODELS
from ..utils import (GROUND_TRUTH_KEYS, build_task_model, build_teacher,
                     get_ground_truth)
from .feature_tap import FeatureTap, StopForward, TapError, TapRecorder

Source = Union[str, Sequence[str]]


def _as_list(source: Source) -> List[str]:
    return [source] if isinstance(source, str) else list(source)


def _channels(value: Any) -> Any:
    """Channel count(s) of a tensor or a list of tensors."""
    if torch.is_tensor(value):
        return value.shape[1]
    return [_channels(v) for v in value]


def _describe(value: Any) -> Any:
    if torch.is_tensor(value):
        return tuple(value.shape)
    if isinstance(value, dict):
        return {k: _describe(v) for k, v in value.items()}
    return [_describe(v) for v in value]


@MODELS.register_module()
class Distiller(BaseModel):
    """Distil a task model of mmpretrain, mmdet or mmseg, leaving it unchanged.

    Training returns the student's own task losses plus every distillation
    loss, prefixed ``distill.`` (e.g. ``distill.loss_kd``); a student loss
    named plainly ``loss`` (mmpretrain's heads) is logged as
    ``student.loss``, since MMEngine logs the total under ``loss``. Validation, test
    and predict run the student alone, so the task library's evaluator
    reports exactly the student's results.

    Features are recorded by forward hooks (*taps*) on module paths of the
    student and of the teacher. *Connectors* (trainable: adapters, the FRSKD
    self-teacher, the ReviewKD review path) transform them, and *losses*
    compare them. Every name a connector or loss refers to is checked when the
    model is built, and one dummy forward infers the connectors' channel
    counts and checks every shape.

    Args:
        student (dict): The task model's config, e.g. ``_base_.model``.
        teacher (dict, optional): ``dict(config=<path or 'mmdet::...'>,
            checkpoint=<path>)`` or ``dict(model=<model dict>, checkpoint=...)``.
            The teacher is frozen (eval mode, no gradients), runs under
            ``torch.no_grad()`` only as far as its taps need, and is not part
            of the distiller's ``state_dict``: checkpoints hold the student and
            the connectors only. ``None`` for self-distillation.
        taps (dict): ``name -> 'student.<module path>'`` or
            ``name -> dict(path=..., io='output'|'input', call=None, index=None)``,
            see :class:`FeatureTap`.
        connectors (dict): ``name -> dict(type=..., inputs=<tap(s)>,
            targets=<tap(s)>, ...)``; ``in_channels``/``out_channels`` are
            inferred from ``inputs``/``targets`` when the connector takes them.
            Their outputs are named by the connector's name (``name.key`` for
            a dict output).
        losses (dict): ``name -> dict(type=..., inputs=dict(<arg>=<source>),
            ...)`` where a source is a tap, a connector output, a list of them,
            or ground truth (``'gt_label'``, ``'gt_sem_seg'``). Names must
            contain ``'loss'``.
        probe_input_shape (tuple, optional): (C, H, W) of the dummy input
            used to infer shapes. Defaults to the student's first conv's input
            channels at 128 x 128.
        data_preprocessor (dict, optional): Given by the runner from the
            config's top-level ``data_preprocessor``; passed to the student if
            its config has none. The distiller uses the student's.
    """

    def __init__(self,
                 student: dict,
                 teacher: Optional[dict] = None,
                 taps: Optional[Dict[str, Any]] = None,
                 connectors: Optional[Dict[str, dict]] = None,
                 losses: Optional[Dict[str, dict]] = None,
                 probe_input_shape: Optional[Sequence[int]] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if isinstance(student, dict):
            student = copy.deepcopy(dict(student))
            if data_preprocessor is not None:
                student.setdefault('data_preprocessor', data_preprocessor)
        student = build_task_model(student)
        super().__init__(
            data_preprocessor=student.data_preprocessor, init_cfg=init_cfg)
        self.student = student
        # Not a registered sub-module: kept out of state_dict(), parameters()
        # (so out of the optimizer and DDP) and train(); _apply() moves it.
        object.__setattr__(
            self, 'teacher',
            build_teacher(**teacher) if teacher is not None else None)

        taps = {name: FeatureTap.from_cfg(name, cfg)
                for name, cfg in (taps or {}).items()}
        if self.teacher is None and any(t.model == 'teacher'
                                        for t in taps.values()):
            raise ValueError('taps name the teacher, but no teacher is '
                             'given (teacher=None)')
        self.taps = taps
        self._student_recorder = TapRecorder(
            self.student, [t for t in taps.values() if t.model == 'student'])
        self._teacher_recorder = TapRecorder(
            self.teacher, [t for t in taps.values() if t.model == 'teacher']
        ) if self.teacher is not None else None

        self.connector_cfgs: Dict[str, dict] = {}
        for name, cfg in (connectors or {}).items():  # may use earlier ones
            self.connector_cfgs[name] = self._check_connector_cfg(name, cfg)
        self.loss_cfgs = {
            name: self._check_loss_cfg(name, cfg)
            for name, cfg in (losses or {}).items()
        }
        self.connectors = nn.ModuleDict()
        self.distill_losses = nn.ModuleDict()
        #: Per-loss multipliers, set every iteration by hooks (warm-up...).
        self.loss_scales: Dict[str, float] = {}
        self._build_from_probe(probe_input_shape)

    # ----------------------------------------------------------- building
    def _known_sources(self) -> List[str]:
        return list(self.taps) + list(GROUND_TRUTH_KEYS)

    def _check_source(self, owner: str, source: str, known: List[str]):
        root = source.split('.', 1)[0]
        if source not in known and root not in known:
            raise ValueError(
                f"{owner} refers to '{source}', which no tap or connector "
                f'provides (known: {", ".join(known)}). Declare it under '
                '`taps` or `connectors`.')

    def _check_connector_cfg(self, name: str, cfg: dict) -> dict:
        cfg = copy.deepcopy(dict(cfg))
        if 'inputs' not in cfg:
            raise ValueError(f"connector '{name}' needs `inputs`: the tap(s) "
                             'it transforms')
        known = self._known_sources() + list(self.connector_cfgs)
        for key in ('inputs', 'targets'):
            for source in _as_list(cfg.get(key, [])):
                self._check_source(f"connector '{name}' ({key})", source,
                                   known)
        return cfg

    def _check_loss_cfg(self, name: str, cfg: dict) -> dict:
        cfg = copy.deepcopy(dict(cfg))
        if 'loss' not in name:
            raise ValueError(
                f"distillation loss name '{name}' must contain 'loss' (MMEngine "
                "sums only log entries named so), e.g. 'loss_kd'")
        mapping = cfg.get('inputs')
        if not isinstance(mapping, dict) or not mapping:
            raise ValueError(
                f"loss '{name}' needs `inputs=dict(<forward arg>=<source>)`, "
                "e.g. inputs=dict(preds_S='s_logits', preds_T='t_logits')")
        loss_cls = MODELS.get(cfg['type'])
        if loss_cls is None:
            raise KeyError(f"loss '{name}': type {cfg['type']!r} is not "
                           'registered in mmkd (or its parent registries)')
        params = inspect.signature(loss_cls.forward).parameters
        accepted = [p for p in params if p != 'self']
        required = [
            p.name for p in params.values() if p.name != 'self'
            and p.default is inspect.Parameter.empty and p.kind in (
                p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        unknown = set(mapping) - set(accepted)
        if unknown:
            raise ValueError(
                f"loss '{name}' ({cfg['type']}): inputs {sorted(unknown)} are "
                f'not arguments of its forward{tuple(accepted)}')
        missing = set(required) - set(mapping)
        if missing:
            raise ValueError(
                f"loss '{name}' ({cfg['type']}): forward arguments "
                f'{sorted(missing)} are fed by no tap; add them to `inputs`')
        known = self._known_sources() + list(self.connector_cfgs)
        for arg, source in mapping.items():
            for s in _as_list(source):
                self._check_source(f"loss '{name}' (argument {arg})", s,
                                   known)
        return cfg

    def _default_probe_shape(self) -> tuple:
        for module in self.student.modules():
            if isinstance(module, nn.Conv2d):
                return (module.in_channels, 128, 128)
        raise ValueError('cannot guess the input shape of the student (no '
                         'Conv2d found); set probe_input_shape=(C, H, W)')

    @torch.no_grad()
    def _build_from_probe(self, probe_input_shape) -> None:
        """Run one dummy forward, build the connectors and check the losses."""
        if not self.connector_cfgs and not self.loss_cfgs:
            return
        shape = tuple(probe_input_shape or self._default_probe_shape())
        #: (C, H, W) of the dummy input the shapes were inferred with.
        self.probe_input_shape = shape
        inputs = torch.zeros((2, ) + shape)
        was_training = self.student.training
        self.student.eval()
        try:
            values = self._record(inputs, None, student_mode='tensor',
                                  probe=True)[0]
        except TapError:
            raise
        except Exception as e:
            raise RuntimeError(
                f'mmkd could not run a dummy input {tuple(inputs.shape)} '
                f'through the models to infer the connectors\' shapes: {e!r}.'
                ' Set probe_input_shape=(C, H, W) to an input size the models '
                'accept.') from e
        finally:
            self.student.train(was_training)

        for name, cfg in self.connector_cfgs.items():
            self.connectors[name] = self._build_connector(name, cfg, values)
            self.connectors[name].eval()
            try:
                self._run_connector(name, values)
            except Exception as e:
                raise ValueError(
                    f"connector '{name}' failed on the probe features "
                    f'{_describe(self._resolve(cfg["inputs"], values))}: '
                    f'{e}') from e
            self.connectors[name].train(was_training)

        for name, cfg in self.loss_cfgs.items():
            cfg = {k: v for k, v in cfg.items() if k != 'inputs'}
            cfg.setdefault('_scope_', 'mmkd')
            self.distill_losses[name] = MODELS.build(cfg)
            mapping = self.loss_cfgs[name]['inputs']
            if any(s in GROUND_TRUTH_KEYS for src in mapping.values()
                   for s in _as_list(src)):
                continue  # no ground truth in the probe
            kwargs = {a: self._resolve(s, values) for a, s in mapping.items()}
            try:
                self.distill_losses[name](**kwargs)
            except Exception as e:
                raise ValueError(
                    f"loss '{name}' does not accept the probe features "
                    f'{ {a: _describe(v) for a, v in kwargs.items()} }: {e}'
                ) from e

    def _build_connector(self, name: str, cfg: dict,
                         values: Dict[str, Any]) -> nn.Module:
        cfg = {k: v for k, v in cfg.items() if k not in ('inputs', 'targets')}
        connector_cls = MODELS.get(cfg['type'])
        if connector_cls is None:
            raise KeyError(f"connector '{name}': type {cfg['type']!r} is not "
                           'registered in mmkd (or its parent registries)')
        params = inspect.signature(connector_cls.__init__).parameters
        source_cfg = self.connector_cfgs[name]
        for key, source_key in (('in_channels', 'inputs'),
                                ('out_channels', 'targets')):
            if source_key not in source_cfg:
                continue
            inferred = _channels(self._resolve(source_cfg[source_key],
                                               values))
            if key not in params:
                continue
            if key in cfg and cfg[key] != inferred:
                raise ValueError(
                    f"connector '{name}': {key}={cfg[key]} is given, but its "
                    f'{source_key} {source_cfg[source_key]} carry {inferred} '
                    'channels. Remove it to let mmkd infer it, or fix the taps.')
            cfg[key] = inferred
        return MODELS.build(dict(cfg, _scope_=cfg.get('_scope_', 'mmkd')))

    # ----------------------------------------------------------- running
    def _resolve(self, source: Source, values: Dict[str, Any]) -> Any:
        if not isinstance(source, str):
            return [self._resolve(s, values) for s in source]
        if source in values:
            return values[source]
        root, _, key = source.partition('.')
        if root in values and isinstance(values[root], dict) and key:
            if key not in values[root]:
                raise KeyError(f"connector '{root}' returns no '{key}' (it "
                               f'returns {sorted(values[root])})')
            return values[root][key]
        raise KeyError(f"'{source}' was not computed in this step")

    def _run_connector(self, name: str, values: Dict[str, Any]) -> None:
        cfg = self.connector_cfgs[name]
        connector = self.connectors[name]
        kwargs = {}
        if 'targets' in cfg and 'out_sizes' in inspect.signature(
                connector.forward).parameters:
            targets = self._resolve(cfg['targets'], values)
            kwargs['out_sizes'] = ([tuple(t.shape[-2:]) for t in targets]
                                   if isinstance(targets, list) else tuple(
                                       targets.shape[-2:]))
        values[name] = connector(self._resolve(cfg['inputs'], values),
                                 **kwargs)

    @staticmethod
    def _run_tapped(recorder: TapRecorder, forward, early_stop: bool,
                    probe: bool):
        """Run ``forward()`` with the recorder on.

        With ``early_stop`` the forward ends once every tap is recorded. In
        the probe the models run to the end (so a tap on a module called
        more than once is detected), and an error raised after every tap was
        recorded (e.g. a detector's RPN asking for image metas that a dummy
        input has not) is ignored.
        """
        recorder.stop_when_complete = early_stop
        recorder.start()
        try:
            return forward()
        except StopForward:
            return None
        except Exception:
            if probe and recorder.complete:
                return None
            raise
        finally:
            recorder.stop()

    def run_teacher(self,
                    inputs: torch.Tensor,
                    data_samples: Optional[list],
                    probe: bool = False) -> None:
        """Run the frozen teacher, without gradients, as far as its taps need.
        """
        if self.teacher is None or not self._teacher_recorder.taps:
            return
        with torch.no_grad():
            self._run_tapped(
                self._teacher_recorder,
                lambda: self.teacher(inputs, data_samples, mode='tensor'),
                early_stop=not probe,
                probe=probe)

    def _record(self,
                inputs: torch.Tensor,
                data_samples: Optional[list],
                student_mode: str,
                probe: bool = False):
        """Run teacher then student with the taps on; return the tap values
        and the student's output."""
        self.run_teacher(inputs, data_samples, probe=probe)
        out = self._run_tapped(
            self._student_recorder,
            lambda: self.student(inputs, data_samples, mode=student_mode),
            early_stop=False,
            probe=probe)
        return {name: tap.get() for name, tap in self.taps.items()}, out

    def compute_distill_losses(self, values: Dict[str, Any],
                               data_samples: Optional[list]) -> dict:
        """Connectors then losses, from the recorded tap values."""
        for name in self.connector_cfgs:
            self._run_connector(name, values)
        losses = {}
        for name, loss in self.distill_losses.items():
            kwargs = {}
            for arg, source in self.loss_cfgs[name]['inputs'].items():
                if isinstance(source, str) and source in GROUND_TRUTH_KEYS:
                    if source not in values:
                        values[source] = get_ground_truth(data_samples, source)
                kwargs[arg] = self._resolve(source, values)
            value = loss(**kwargs)
            scale = self.loss_scales.get(name, 1.0)
            losses[f'distill.{name}'] = value * scale if scale != 1 else value
        return losses

    def loss(self, inputs: torch.Tensor, data_samples: list) -> dict:
        """Student task losses + ``distill.*`` losses."""
        values, losses = self._record(inputs, data_samples, 'loss')
        losses = dict(losses)
        if 'loss' in losses:
            # MMEngine logs the total under 'loss'; a student loss named so
            # (mmpretrain's heads) would overwrite it in the log.
            losses['student.loss'] = losses.pop('loss')
        losses.update(self.compute_distill_losses(values, data_samples))
        return losses

    def forward(self,
                inputs: torch.Tensor,
                data_samples: Optional[list] = None,
                mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode in ('predict', 'tensor'):
            return self.student(inputs, data_samples, mode=mode)
        raise RuntimeError(f'Invalid mode "{mode}". Only supports loss, '
                           'predict and tensor mode')

    # ------------------------------------------------ the hidden teacher
    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        if self.teacher is not None:
            self.teacher._apply(fn, *args, **kwargs)
        return self

    def train(self, mode: bool = True) -> 'Distiller':
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def extra_repr(self) -> str:
        teacher = type(self.teacher).__name__ if self.teacher is not None \
            else 'None (self-distillation)'
        return f'teacher: {teacher} (frozen, not in state_dict)'

