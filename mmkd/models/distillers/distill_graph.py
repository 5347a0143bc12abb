"""The config graph of a distiller: taps -> connectors -> losses.

One :class:`DistillGraph` holds what a distiller's config declares besides
the models: the taps' names, the connectors and the distillation losses with
their inputs. It checks every name when built, builds the connectors and the
losses from the tap values of one dummy forward (the *probe*), and, in every
training step, runs the connectors and the losses on the recorded values.
Running the models (and so recording the taps) is the distiller's job.
The parts a distiller adds besides connectors and losses (the critic of
:class:`AdversarialDistiller`) are built by :meth:`DistillGraph.build_module`
with the same registry look-up and channel inference, and their losses are
named (:func:`check_loss_name`) and scaled (:meth:`DistillGraph.scaled`) as
the graph's.
"""
import copy
import inspect
from contextlib import contextmanager
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from mmkd.registry import MODELS
from ..utils import GROUND_TRUTH_KEYS, get_ground_truth
from .nonfinite_guard import BufferSnapshot

Source = Union[str, Sequence[str]]
ProbeGT = Callable[[str, str], Any]


def as_list(source: Source) -> List[str]:
    return [source] if isinstance(source, str) else list(source)


def channels(shape: Any) -> Any:
    """Channel count(s) of a shape (a tuple, as :func:`describe` gives for a
    tensor) or of a list of shapes."""
    if isinstance(shape, tuple):
        return shape[1]
    if isinstance(shape, list):
        return [channels(s) for s in shape]
    raise ValueError(f'no channel count in {shape!r}: name one tensor or a '
                     'list of tensors (a dict output by its key, name.key)')


def describe(value: Any) -> Any:
    """Shapes of a tensor or of a (nested) list/dict of tensors."""
    if torch.is_tensor(value):
        return tuple(value.shape)
    if isinstance(value, dict):
        return {k: describe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [describe(v) for v in value]
    return type(value).__name__


def check_loss_name(name: str, what: str = 'distillation loss name') -> None:
    """Raise if ``name`` lacks ``'loss'``: MMEngine sums only the log
    entries named so, so a term named otherwise would be logged and never
    trained."""
    if 'loss' not in name:
        raise ValueError(
            f"{what} '{name}' must contain 'loss' (MMEngine sums only log "
            "entries named so), e.g. 'loss_kd'")


def to_float32(value: Any) -> Any:
    """``value`` with every floating tensor below float32 (bf16/fp16 from
    autocast or a low-precision teacher) cast to float32, recursively
    through lists, tuples and dicts; anything else as it is."""
    if torch.is_tensor(value):
        return value.float() if value.dtype in (torch.bfloat16,
                                                torch.float16) else value
    if isinstance(value, (list, tuple)):
        return type(value)(to_float32(v) for v in value)
    if isinstance(value, dict):
        return {k: to_float32(v) for k, v in value.items()}
    return value


def _device_type(kwargs: Dict[str, Any]) -> str:
    """The device type of the first tensor among the loss arguments."""
    stack = list(kwargs.values())
    while stack:
        value = stack.pop(0)
        if torch.is_tensor(value):
            return value.device.type
        if isinstance(value, (list, tuple)):
            stack[:0] = list(value)
        elif isinstance(value, dict):
            stack[:0] = list(value.values())
    return 'cpu'


def _batchnorm_batch_error(error: Exception) -> bool:
    """Whether ``error`` is PyTorch's refusal to normalise one value per
    channel (BatchNorm in training mode on a batch of one 1x1 map)."""
    return isinstance(error,
                      ValueError) and ('Expected more than 1 value per channel'
                                       in str(error))


@contextmanager
def state_kept(modules: Sequence[nn.Module]):
    """Run a block, then put back the buffers of ``modules`` and torch's
    CPU random generator as they were before it: the losses run on the
    probe must leave no trace (e.g. the probe's embeddings written into the
    memory queues of CIRKD's connector, which undoes its own writes, or
    random numbers drawn). ``modules`` must not share submodules."""
    snapshots = [BufferSnapshot().take(m) for m in modules]
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            for snapshot in snapshots:
                snapshot.restore()


class DistillGraph:
    """Names, connectors and losses of a distiller, checked and run.

    Args:
        tap_names (Sequence[str]): Names of the distiller's taps.
        connectors (dict): ``name -> dict(type=..., inputs=<source(s)>,
            targets=<source(s)>, ...)``, in execution order (a connector may
            use the outputs of earlier ones).
        losses (dict): ``name -> dict(type=..., inputs=dict(<forward arg>=
            <source>), ...)``; names must contain ``'loss'``. A loss class
            with a static ``check_wiring(name, inputs, connector_cfgs)``
            checks there which sources its arguments must come from (e.g.
            the outputs of one connector), raising ``ValueError``.

    Attributes:
        connectors (nn.ModuleDict): Built by :meth:`build`; the distiller
            registers it as its ``connectors`` sub-module.
        losses (nn.ModuleDict): Built by :meth:`build`; registered as the
            distiller's ``distill_losses``.
        loss_scales (dict): ``loss name -> multiplier``, set by hooks (warm-up,
            ramp-up) before an iteration; missing names mean 1.
        shapes (dict): ``source -> shape`` of every tap and connector output
            in the probe (a tuple per tensor; lists and dicts as the
            values), filled by :meth:`build`.
    """

    def __init__(self,
                 tap_names: Sequence[str],
                 connectors: Optional[Dict[str, dict]] = None,
                 losses: Optional[Dict[str, dict]] = None) -> None:
        self.tap_names = list(tap_names)
        self.connector_cfgs: Dict[str, dict] = {}
        for name, cfg in (connectors or {}).items():  # may use earlier ones
            self.connector_cfgs[name] = self._check_connector_cfg(name, cfg)
        self.loss_cfgs = {
            name: self._check_loss_cfg(name, cfg)
            for name, cfg in (losses or {}).items()
        }
        self.connectors = nn.ModuleDict()
        self.losses = nn.ModuleDict()
        self.loss_scales: Dict[str, float] = {}
        self.shapes: Dict[str, Any] = {}
        # Filled by build(): what a step needs, so that no step inspects
        # signatures or configs.
        self._connector_plan: List[Tuple[str, Source, Optional[Source],
                                         bool]] = []
        self._loss_plan: List[Tuple[str, List[Tuple[str, Source]]]] = []
        self._gt_keys: List[str] = []

    # ------------------------------------------------------------ checks
    def known_sources(self) -> List[str]:
        """Taps, ground truth keys and declared connectors."""
        return (self.tap_names + list(GROUND_TRUTH_KEYS) +
                list(self.connector_cfgs))

    def check_source(self, owner: str, source: str) -> None:
        """Raise if ``source`` (``name`` or ``connector.key``) is provided by
        no tap, ground truth or connector declared so far."""
        known = self.known_sources()
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
        for key in ('inputs', 'targets'):
            for source in as_list(cfg.get(key, [])):
                self.check_source(f"connector '{name}' ({key})", source)
        return cfg

    def _check_loss_cfg(self, name: str, cfg: dict) -> dict:
        cfg = copy.deepcopy(dict(cfg))
        check_loss_name(name)
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
            p.name for p in params.values()
            if p.name != 'self' and p.default is inspect.Parameter.empty
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
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
        for arg, source in mapping.items():
            for s in as_list(source):
                self.check_source(f"loss '{name}' (argument {arg})", s)
        check_wiring = getattr(loss_cls, 'check_wiring', None)
        if check_wiring is not None:  # a loss tied to a connector
            check_wiring(name, mapping, self.connector_cfgs)
        return cfg

    # ------------------------------------------------------------ building
    def build(
        self,
        values: Dict[str, Any],
        training: bool = True,
        probe_gt: Optional[Callable[[str, str],
                                    Any]] = None) -> Dict[str, Any]:
        """Build the connectors and the losses from the probe's tap values
        (inferring channels), and run each once on them to check shapes.

        Args:
            values (dict): ``tap name -> tensor or list of tensors`` of the
                probe (not changed).
            training (bool): Mode to leave the connectors in.
            probe_gt (callable, optional): ``(loss name, ground-truth key)
                -> stand-in value`` for the probe's batch, or ``None`` where
                the key has none. A loss fed by ground truth runs on the
                probe only when every key it uses has a stand-in.

        Returns:
            dict: ``connector name -> output`` on the probe. :attr:`shapes`
            holds the shapes of the taps and of these outputs.
        """
        sources = dict(values)
        self.shapes = {name: describe(v) for name, v in values.items()}
        for name, cfg in self.connector_cfgs.items():
            channel_sources = {
                key: (f'its {source_key} {cfg[source_key]}', cfg[source_key])
                for key, source_key in (('in_channels', 'inputs'),
                                        ('out_channels', 'targets'))
                if source_key in cfg
            }
            build_cfg = {
                k: v
                for k, v in cfg.items() if k not in ('inputs', 'targets')
            }
            connector = self.build_module(f"connector '{name}'", build_cfg,
                                          channel_sources)
            self.connectors[name] = connector
            needs_sizes = 'targets' in cfg and 'out_sizes' in (
                inspect.signature(connector.forward).parameters)
            self._connector_plan.append(
                (name, cfg['inputs'], cfg.get('targets'), needs_sizes))
            connector.eval()
            try:
                self._run_connector(self._connector_plan[-1], sources)
            except Exception as e:
                raise ValueError(
                    f"connector '{name}' failed on the probe features "
                    f'{describe(self.resolve(cfg["inputs"], sources))}: '
                    f'{e}') from e
            connector.train(training)
            self.shapes[name] = describe(sources[name])

        gt_keys = set()
        for name, cfg in self.loss_cfgs.items():
            build_cfg = {k: v for k, v in cfg.items() if k != 'inputs'}
            build_cfg.setdefault('_scope_', 'mmkd')
            self.losses[name] = MODELS.build(build_cfg)
        with state_kept(
                list(self.connectors.values()) + list(self.losses.values())):
            for name, cfg in self.loss_cfgs.items():
                gt_keys.update(
                    self._probe_loss(name, cfg['inputs'], sources, probe_gt))
        self._gt_keys = sorted(gt_keys)
        return {name: sources[name] for name in self.connector_cfgs}

    def _probe_loss(self, name: str, mapping: Dict[str, Source],
                    sources: Dict[str, Any],
                    probe_gt: Optional[ProbeGT]) -> List[str]:
        """Plan loss ``name`` and run it once on the probe's values
        (unless a ground-truth key it uses has no stand-in); return the
        ground-truth keys it uses."""
        self._loss_plan.append((name, list(mapping.items())))
        gt = {}
        for source in mapping.values():
            for s in as_list(source):
                if s in GROUND_TRUTH_KEYS:
                    gt[s] = None if probe_gt is None else probe_gt(name, s)
        if any(v is None for v in gt.values()):
            return list(gt)  # a key without a stand-in: not run on the probe
        kwargs = {
            a: self.resolve(s, dict(sources, **gt))
            for a, s in mapping.items()
        }
        try:
            self.losses[name](**kwargs)
        except Exception as e:
            raise ValueError(
                f"loss '{name}' does not accept the probe features "
                f'{ {a: describe(v) for a, v in kwargs.items()} }: {e}') from e
        return list(gt)

    def shape_of(self, source: Source) -> Any:
        """The probe shape of a source (tap, connector output or
        ``connector.key``; a list of sources gives a list), from
        :attr:`shapes`."""
        return self.resolve(source, self.shapes)

    def build_module(
            self, owner: str, cfg: dict,
            channel_sources: Dict[str, Tuple[str, Source]]) -> nn.Module:
        """Build a module from the registry, inferring its channel counts.

        Args:
            owner (str): Its name in the messages, e.g. ``"connector
                'hint'"`` or ``'critic'``.
            cfg (dict): ``type=...`` and its arguments (``_scope_``
                defaults to ``'mmkd'``).
            channel_sources (dict): ``argument -> (description, source)``,
                e.g. ``in_channels=('its inputs s3', 's3')``: if the
                module's ``__init__`` takes the argument, it is set to the
                channel count(s) of the source in the probe; a value given
                in ``cfg`` must equal it.

        Returns:
            nn.Module: The built module.
        """
        build_cfg = copy.deepcopy(dict(cfg))
        module_cls = MODELS.get(build_cfg['type'])
        if module_cls is None:
            raise KeyError(f"{owner}: type {build_cfg['type']!r} is not "
                           'registered in mmkd (or its parent registries)')
        params = inspect.signature(module_cls.__init__).parameters
        for key, (description, source) in channel_sources.items():
            if key not in params:
                continue
            inferred = channels(self.shape_of(source))
            if key in build_cfg and build_cfg[key] != inferred:
                raise ValueError(
                    f'{owner}: {key}={build_cfg[key]} is given, but '
                    f'{description} carry {inferred} channels. Remove it to '
                    'let mmkd infer it, or fix the taps.')
            build_cfg[key] = inferred
        build_cfg.setdefault('_scope_', 'mmkd')
        return MODELS.build(build_cfg)

    # ------------------------------------------------------------ running
    def resolve(self, source: Source, values: Dict[str, Any]) -> Any:
        """The value of a source (a list of sources gives a list)."""
        if not isinstance(source, str):
            return [self.resolve(s, values) for s in source]
        if source in values:
            return values[source]
        root, _, key = source.partition('.')
        if root in values and isinstance(values[root], dict) and key:
            if key not in values[root]:
                raise KeyError(f"connector '{root}' returns no '{key}' (it "
                               f'returns {sorted(values[root])})')
            return values[root][key]
        raise KeyError(f"'{source}' was not computed in this step")

    def _run_connector(self, plan: tuple, values: Dict[str, Any]) -> None:
        name, inputs, targets, needs_sizes = plan
        kwargs = {}
        if needs_sizes:
            target = self.resolve(targets, values)
            kwargs['out_sizes'] = ([
                tuple(t.shape[-2:]) for t in target
            ] if isinstance(target, list) else tuple(target.shape[-2:]))
        x = self.resolve(inputs, values)
        try:
            values[name] = self.connectors[name](x, **kwargs)
        except ValueError as e:
            if not _batchnorm_batch_error(e):
                raise
            batch = describe(x)
            raise ValueError(
                f"connector '{name}' got a batch of size 1 (inputs "
                f'{batch}): its BatchNorm layers, in training mode, normalise '
                'over the batch and the spatial positions, and some of its '
                'maps are 1x1 (e.g. the pooled level of the ReviewKD review '
                'path), so a single sample gives one value per channel. '
                'Train with batch size >= 2 per process and set '
                '`train_dataloader.drop_last=True` (an epoch whose length '
                'is not a multiple of the batch size ends with a smaller '
                f'batch). PyTorch: {e}') from e

    def run_connectors(self, values: Dict[str, Any]) -> Dict[str, Any]:
        """Run every connector in order on the tap values (``values`` is not
        changed) and return ``connector name -> output``."""
        sources = dict(values)
        for plan in self._connector_plan:
            self._run_connector(plan, sources)
        return {name: sources[name] for name in self.connector_cfgs}

    def scaled(self, name: str, value: Tensor) -> Tensor:
        """``value`` times the loss scale of ``name`` (1 if unset)."""
        scale = self.loss_scales.get(name, 1.0)
        return value * scale if scale != 1 else value

    def compute_losses(
        self, values: Dict[str, Any], data_samples: Optional[list]
    ) -> Tuple[Dict[str, Tensor], Dict[str, Any]]:
        """Connectors, then every loss times its scale.

        Args:
            values (dict): The recorded tap values (not changed).
            data_samples (list, optional): The batch's data samples, for
                the losses fed by ground truth.

        Returns:
            tuple[dict, dict]: The losses, named ``distill.<name>``, and
            the connector outputs (``connector name -> output``).
        """
        outputs = self.run_connectors(values)
        sources = dict(values, **outputs)
        for key in self._gt_keys:
            if key not in sources:
                sources[key] = get_ground_truth(data_samples, key)
        losses = {}
        for name, mapping in self._loss_plan:
            kwargs = {
                arg: to_float32(self.resolve(s, sources))
                for arg, s in mapping
            }
            # Losses compute in float32 whatever the training precision
            # (bf16/fp16 autocast, a low-precision teacher): softmax/KL,
            # attention maps and Gram products lose too much below it.
            with torch.autocast(_device_type(kwargs), enabled=False):
                value = self.losses[name](**kwargs)
            losses[f'distill.{name}'] = self.scaled(name, value)
        return losses, outputs
