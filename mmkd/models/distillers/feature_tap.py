"""Feature taps: record a module's output (or input) by a forward hook.

A tap is declared in a config by module path, e.g.
``'student.backbone.layer4'`` (the module's output) or
``dict(path='teacher.backbone.layer4.1.relu', io='input', call=1)`` (the
*input* of the second call of a shared ReLU: the pre-activation residual
sum of the last block of mmpretrain's ResNet stage),
or ``dict(path='teacher.auxiliary_head.conv_seg', run_head='auxiliary_head')``
(a head that the tensor-mode forward skips, run on the extracted features:
see :mod:`.extra_heads`). The models themselves are never edited.
"""
import copy
import difflib
from typing import Any, Dict, List, Optional, Union

import torch
from torch import nn

TapCfg = Union[str, Dict[str, Any]]


class TapError(RuntimeError):
    """A tap did not record what it was declared to record."""


class StopForward(Exception):
    """Raised by a hook once every tap of a model has been recorded.

    The distiller catches it, so the teacher runs only as far as its taps
    need (e.g. backbone + neck of a detector).
    """


class FeatureTap:
    """One recorded tensor, taken from a module of the student or the teacher.

    Args:
        name (str): The tap's name, used by connectors and losses.
        path (str): ``'<model>.<module path>'`` with ``<model>`` one of
            ``student`` or ``teacher``.
        io (str): ``'output'`` (default) or ``'input'`` (the first positional
            input; use it for pre-activation features).
        call (int, optional): Which call of the module to record when it runs
            more than once per forward (0-based; negative counts from the
            end). ``None`` (default) requires exactly one call and raises an
            error naming the count otherwise.
        index (int, optional): Pick one element when the module returns a
            tuple/list (e.g. ``index=-1`` of an mmpretrain backbone). Without
            it, a tuple/list of tensors is recorded as a list (e.g. all FPN
            levels of a detector's neck).
        run_head (str, optional): The module path of a head that the
            model's tensor-mode forward does not run (e.g. mmseg's
            ``'auxiliary_head'``), to run on the output of the model's
            ``extract_feat`` whenever the distiller runs the model in tensor
            mode: the teacher always, the student in the build-time probe
            (in training the student's loss-mode forward runs its heads
            itself). See :mod:`.extra_heads`.
    """

    def __init__(self,
                 name: str,
                 path: str,
                 io: str = 'output',
                 call: Optional[int] = None,
                 index: Optional[int] = None,
                 run_head: Optional[str] = None) -> None:
        if io not in ('output', 'input'):
            raise ValueError(
                f"tap '{name}': io must be 'output' or 'input', got {io!r}")
        if run_head is not None and (not isinstance(run_head, str)
                                     or not run_head):
            raise ValueError(
                f"tap '{name}': run_head must be the module path of a head "
                f"(e.g. 'auxiliary_head'), got {run_head!r}")
        model, _, module_path = path.partition('.')
        if model not in ('student', 'teacher') or not module_path:
            raise ValueError(
                f"tap '{name}': path {path!r} must start with 'student.' or "
                "'teacher.' followed by a module path, e.g. "
                "'student.backbone.layer4'")
        self.name = name
        self.path = path
        self.model = model
        self.module_path = module_path
        self.io = io
        self.call = call
        self.index = index
        self.run_head = run_head
        self.calls: List[torch.Tensor] = []

    @classmethod
    def from_cfg(cls, name: str, cfg: TapCfg) -> 'FeatureTap':
        """Build a tap from ``'path'`` or ``dict(path=..., io=..., ...)``."""
        if isinstance(cfg, str):
            return cls(name, cfg)
        cfg = dict(cfg)
        unknown = set(cfg) - {'path', 'io', 'call', 'index', 'run_head'}
        if 'path' not in cfg or unknown:
            raise ValueError(
                f"tap '{name}': expected a module path string or a dict with "
                f"keys path[, io, call, index, run_head], got {cfg!r}")
        return cls(name, **cfg)

    @property
    def complete(self) -> bool:
        """Whether the wanted call has been seen (never, for negative
        calls)."""
        want = 0 if self.call is None else self.call
        return want >= 0 and len(self.calls) > want

    def reset(self) -> None:
        self.calls = []

    def __deepcopy__(self, memo) -> 'FeatureTap':
        # A copy records its own calls (recorded tensors are not copied).
        new = copy.copy(self)
        new.calls = []
        memo[id(self)] = new
        return new

    def record(self, value: Any, module: nn.Module) -> None:
        if self.index is not None:
            if not isinstance(value, (tuple, list)):
                raise TypeError(
                    f"tap '{self.name}' ({self.path}) has index="
                    f'{self.index}, but the module returned a '
                    f'{type(value).__name__}, not a tuple/list')
            value = value[self.index]
        if isinstance(value, (tuple, list)) and value and all(
                torch.is_tensor(v) for v in value):
            value = list(value)  # e.g. all FPN levels of a neck
        elif not torch.is_tensor(value):
            raise TypeError(
                f"tap '{self.name}' ({self.path}) recorded a "
                f'{type(value).__name__}; taps must give a tensor or a '
                'tuple/list of tensors. Use index=... to pick one element, '
                'or tap a sub-module.')
        if self.io == 'input' and getattr(module, 'inplace', False):
            # An in-place module (e.g. ReLU(inplace=True)) would overwrite
            # the recorded input right after the hook.
            value = [v.clone() for v in value] if isinstance(
                value, list) else value.clone()
        self.calls.append(value)

    def get(self) -> torch.Tensor:
        """The recorded tensor of the wanted call."""
        n = len(self.calls)
        if n == 0:
            raise TapError(
                f"tap '{self.name}' ({self.path}): the module did not run in "
                'this forward. A module outside the forward of the mode the '
                'model runs in (the teacher always runs in tensor mode; e.g. '
                'an auxiliary head runs only in loss mode) cannot be tapped, '
                "unless the tap runs its head (run_head='<head>')")
        if self.call is None:
            if n != 1:
                raise TapError(
                    f"tap '{self.name}' ({self.path}): the module ran {n} "
                    'times in one forward; set call=<index> (0-based, -1 for '
                    'the last) to say which call to record')
            return self.calls[0]
        if not -n <= self.call < n:
            raise TapError(
                f"tap '{self.name}' ({self.path}) wants call {self.call}, "
                f'but the module ran {n} times in this forward')
        return self.calls[self.call]


def get_submodule(root: nn.Module, model_name: str, path: str,
                  tap_name: str) -> nn.Module:
    """Resolve ``path`` in ``root``, suggesting close names if it is wrong."""
    try:
        return root.get_submodule(path)
    except AttributeError:
        names = [n for n, _ in root.named_modules() if n]
        close = difflib.get_close_matches(path, names, n=5, cutoff=0.5)
        hint = (f' Did you mean: {", ".join(close)}?' if close else
                f' Its top-level modules are: '
                f'{", ".join(n for n, _ in root.named_children())}.')
        raise ValueError(
            f"tap '{tap_name}': the {model_name} has no module "
            f"'{path}'.{hint}") from None


class TapRecorder:
    """Registers forward hooks for a set of taps on one model.

    Args:
        model (nn.Module): The model whose modules are tapped.
        taps (list[FeatureTap]): Its taps.
        stop_when_complete (bool): Raise :class:`StopForward` as soon as
            every tap has what it wants (used for the frozen teacher). Never
            for a tap on the last call (``call < 0``), which needs the whole
            forward.
    """

    def __init__(self,
                 model: nn.Module,
                 taps: List[FeatureTap],
                 stop_when_complete: bool = False) -> None:
        self.taps = taps
        self.active = False
        self.stop_when_complete = stop_when_complete
        self._can_stop = all(t.call is None or t.call >= 0 for t in taps)
        self._handles = []
        for tap in taps:
            module = get_submodule(model, tap.model, tap.module_path, tap.name)
            if tap.io == 'output':
                handle = module.register_forward_hook(
                    self._make_output_hook(tap))
            else:
                handle = module.register_forward_pre_hook(
                    self._make_input_hook(tap))
            self._handles.append(handle)

    def _after_record(self) -> None:
        if self.stop_when_complete and self._can_stop and self.complete:
            raise StopForward

    @property
    def complete(self) -> bool:
        """Whether every tap has recorded the call it wants."""
        return all(t.complete for t in self.taps)

    def _make_output_hook(self, tap: FeatureTap) -> '_OutputHook':
        return _OutputHook(self, tap)

    def _make_input_hook(self, tap: FeatureTap) -> '_InputHook':
        return _InputHook(self, tap)

    def start(self) -> None:
        for tap in self.taps:
            tap.reset()
        self.active = True

    def stop(self) -> None:
        self.active = False

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


class _OutputHook:
    """Forward hook recording a module's output into a tap.

    An object rather than a closure, so that ``copy.deepcopy`` of a model
    gives the copy hooks bound to the copied recorder and taps.
    """

    def __init__(self, recorder: TapRecorder, tap: FeatureTap) -> None:
        self.recorder = recorder
        self.tap = tap

    def __call__(self, module, args, output):
        if self.recorder.active:
            self.tap.record(output, module)
            self.recorder._after_record()


class _InputHook(_OutputHook):
    """Forward pre-hook recording a module's first positional input."""

    def __call__(self, module, args):
        if self.recorder.active:
            if not args:
                raise RuntimeError(
                    f"tap '{self.tap.name}' ({self.tap.path}) wants the "
                    "module's input, but it was called without positional "
                    'args')
            self.tap.record(args[0], module)
            self.recorder._after_record()
