"""Skip a training step whose losses or gradients are not finite.

One NaN in a step (a bad batch, an overflow in a loss) is enough to make
every weight NaN after the optimizer step, and the BatchNorm running
statistics NaN already in the forward. :class:`NonFiniteGuard` makes such a
step change nothing:

* before the forward, the model's buffers are copied (BN running statistics,
  spectral-norm vectors: the only state a forward changes), except those a
  module undoes itself (CIRKD's queues: :class:`BufferSnapshot`);
* after the forward, every logged loss term (and their sum) is checked; a
  non-finite one skips the backward and the optimizer step and puts the
  buffers back;
* after the backward, the gradients are checked in one pass (the norm of
  every gradient by ``torch._foreach_norm``) unless the optimizer wrapper has
  a loss scaler (see below);
* the decisions are all-reduced (min) so that every process of a
  distributed run skips the same steps.

Skipped steps are logged (a warning naming the terms, and the log variables
``nonfinite.skipped`` = 1 and ``nonfinite.skipped_total``); after
``max_consecutive`` skips in a row training stops with
:class:`NonFiniteLossError` naming the terms.

With a loss scaler (MMEngine's ``AmpOptimWrapper``: float16 autocast and a
``GradScaler``), scaled gradients that overflow are expected: the scaler
finds them in ``optimizer_wrapper.step()``, skips the optimizer step and
lowers its scale in ``update()``. The guard leaves that to the scaler: it
does not check the gradients, it calls the wrapper's ``step()`` as usual
(so ``update()`` runs and the scale backs off), it never copies or restores
the scaler's state, and a step the scaler skipped (its scale went down) is
neither counted as a skipped step nor as a good one (the run of skips in a
row neither grows nor restarts). A non-finite loss term is caught before the
backward as without a scaler: no backward, no ``step()``/``update()`` (the
scaler has seen no gradient, so its scale stays), the buffers are restored,
and the step is counted. With a static loss scale (``loss_scale=<float>``)
the scale does not move, so the scaler's skips count as good steps.

A gradient that is NaN at every scale (a NaN made in the backward, not an
overflow) would make the scaler skip every step and halve its scale for
ever, silently. A scaler skip that leaves the scale below ``min_loss_scale``
(default 1: the unscaled float16 gradients themselves overflow, or are
NaN) is therefore a skipped step of the guard: counted, warned about, the
buffers restored, and training stops after ``max_consecutive`` of them in a
row.

The flags are all-reduced with :func:`mmengine.dist.all_reduce`, which moves
a CPU flag to the backend's device (NCCL: CUDA) and back.
"""
import logging
from typing import Callable, Dict, List, Optional, Sequence

import torch
from mmengine import dist
from mmengine.logging import print_log
from torch import Tensor, nn


class NonFiniteLossError(RuntimeError):
    """Too many consecutive training steps had non-finite losses or
    gradients."""


def _all_finite_everywhere(flag: Tensor) -> bool:
    """``flag`` (a 0-d bool/float tensor, 1 = finite) is all-reduced by min
    over the processes."""
    flag = flag.float().reshape(())
    dist.all_reduce(flag, op='min')
    return bool(flag.item() >= 1)


class BufferSnapshot:
    """Values of a module's buffers, taken before a forward and put back
    after a skipped step (or after the build-time probe of the losses:
    :func:`~mmkd.models.distillers.distill_graph.state_kept`).

    The copies are kept between steps and refreshed by one
    ``torch._foreach_copy_`` (no allocation while the buffers stay the same
    tensors); they are not deep-copied or pickled with the model.

    A submodule that writes few elements of large buffers per step (CIRKD's
    queues) can undo its own writes instead of being copied whole: it
    defines ``undo_log_buffers()`` (the buffers it undoes),
    ``start_undo_log()`` (called by :meth:`take`: record from now on what
    each write overwrites) and ``undo()`` (called by :meth:`restore`: put
    back what was recorded, newest first) and ``stop_undo_log()`` (called
    by :meth:`discard` when the step is kept). One snapshot at a time may
    cover an undoable module (the log is the module's).
    """

    def __init__(self) -> None:
        self._buffers: List[Tensor] = []
        self._copies: List[Tensor] = []
        self._undoable: List[nn.Module] = []

    def take(self, module: nn.Module) -> 'BufferSnapshot':
        undoable = [
            m for m in module.modules()
            if callable(getattr(m, 'start_undo_log', None))
        ]
        own = {id(b) for m in undoable for b in m.undo_log_buffers()}
        buffers = [b for b in module.buffers() if id(b) not in own]
        if len(buffers) != len(self._buffers) or any(
                a is not b for a, b in zip(buffers, self._buffers)):
            self._buffers = buffers
            self._copies = [torch.empty_like(b) for b in buffers]
        if buffers:
            with torch.no_grad():
                torch._foreach_copy_(self._copies, buffers)
        for m in undoable:
            m.start_undo_log()
        self._undoable = undoable
        return self

    def restore(self) -> None:
        if self._buffers:
            with torch.no_grad():
                torch._foreach_copy_(self._buffers, self._copies)
        for m in self._undoable:
            m.undo()
        self._undoable = []

    def discard(self) -> None:
        """The step is kept: the undoable modules stop recording."""
        for m in self._undoable:
            m.stop_undo_log()
        self._undoable = []

    def __deepcopy__(self, memo) -> 'BufferSnapshot':
        return BufferSnapshot()

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()


def loss_scaler(optim_wrapper):
    """The enabled loss scaler of ``optim_wrapper`` (MMEngine's
    ``AmpOptimWrapper`` has a ``GradScaler``), or None."""
    scaler = getattr(optim_wrapper, 'loss_scaler', None)
    if scaler is None:
        return None
    is_enabled = getattr(scaler, 'is_enabled', None)
    enabled = bool(is_enabled()) if callable(is_enabled) else True
    return scaler if enabled else None


def has_loss_scaler(optim_wrapper) -> bool:
    """Whether ``optim_wrapper`` scales the loss and skips overflowing steps
    itself (MMEngine's ``AmpOptimWrapper`` with a ``GradScaler``)."""
    return loss_scaler(optim_wrapper) is not None


def _current_scale(scaler) -> Optional[Tensor]:
    """A copy of the scaler's scale (a tensor on the device; no host sync),
    or None before its first ``scale()``."""
    get = getattr(scaler, '_get_scale_async', None)
    scale = get() if callable(get) else None
    if scale is None:
        value = scaler.get_scale()
        return None if value is None else torch.tensor(float(value))
    return scale.detach().clone()


def _scale_went_down(scaler, before: Optional[Tensor]) -> bool:
    """Whether the scaler backed off since ``before``: it found inf/NaN
    gradients and skipped the optimizer step (a dynamic scale only goes
    down then)."""
    after = _current_scale(scaler)
    if before is None or after is None:
        return False
    return bool((after.to(before.device) < before).item())


def _grads(optim_wrapper) -> List[tuple]:
    return [(p, p.grad) for group in optim_wrapper.param_groups
            for p in group['params'] if p.grad is not None]


def grads_finite(optim_wrapper) -> bool:
    """Whether every gradient of the wrapper's parameters is finite on
    every process (one ``_foreach_norm`` pass; a gradient whose 2-norm
    overflows float32 counts as non-finite)."""
    grads = [g for _, g in _grads(optim_wrapper)]
    if grads:
        norms = torch._foreach_norm(grads)
        groups: Dict[tuple, list] = {}
        for n in norms:
            groups.setdefault((n.device, n.dtype), []).append(n)
        totals = [torch.stack(v).float().sum() for v in groups.values()]
        device = totals[0].device
        total = (
            totals[0] if len(totals) == 1 else torch.stack(
                [t.to(device) for t in totals]).sum())
        flag = torch.isfinite(total)
    else:
        flag = torch.ones((), dtype=torch.bool)
    return _all_finite_everywhere(flag)


def nonfinite_grad_names(optim_wrapper,
                         names: Dict[int, str],
                         limit: int = 5) -> List[str]:
    """Names of (at most ``limit``) parameters with non-finite gradients on
    this process (slow; only for the message of a skipped step)."""
    out = []
    for p, g in _grads(optim_wrapper):
        if not torch.isfinite(g).all():
            out.append(names.get(id(p), f'<parameter {tuple(p.shape)}>'))
            if len(out) >= limit:
                break
    return out


def loss_terms(log_vars: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """The terms that reach the weights: log entries named ``*loss*``
    (MMEngine sums exactly those), their sum ``loss`` included."""
    return {
        k: v
        for k, v in log_vars.items() if 'loss' in k and torch.is_tensor(v)
    }


def _warn(message: str) -> None:
    print_log(message, logger='current', level=logging.WARNING)


class NonFiniteGuard:
    """Guards the updates of one optimizer wrapper: checks, counts and
    reports skipped steps (see the module docstring).

    Args:
        max_consecutive (int): Skipped steps in a row after which training
            stops with :class:`NonFiniteLossError`. Defaults to 10.
        owner (str): Name in the messages, e.g. ``'Distiller'``.
        part (str): The update guarded, in the messages and log names:
            ``''`` for the model's own step, e.g. ``'critic'`` for the
            critic's step of :class:`AdversarialDistiller` (messages say
            "critic step", log variables ``critic.nonfinite.*``).
        warn (callable, optional): Receives each warning message. Defaults
            to MMEngine's current logger (level WARNING).
        min_loss_scale (float): A loss scaler's skip that leaves its scale
            below this counts as a skipped step (module docstring).
            Defaults to 1.
    """

    def __init__(self,
                 max_consecutive: int = 10,
                 owner: str = 'Distiller',
                 part: str = '',
                 warn: Optional[Callable[[str], None]] = None,
                 min_loss_scale: float = 1.0) -> None:
        if max_consecutive < 1:
            raise ValueError('max_consecutive_nonfinite must be >= 1, got '
                             f'{max_consecutive}')
        self.max_consecutive = max_consecutive
        self.owner = owner
        self.part = part
        self.warn = warn or _warn
        self.min_loss_scale = min_loss_scale
        #: Steps skipped since the model was built (or resumed).
        self.skipped_total = 0
        #: Skipped steps in a row (0 after a good step).
        self.consecutive = 0
        self._culprits: List[str] = []
        #: Reused by the owner's train step (see :class:`BufferSnapshot`).
        self.snapshot = BufferSnapshot()

    def losses_finite(self, log_vars: Dict[str, Tensor]) -> List[str]:
        """Names of the non-finite loss terms of this step, ``[]`` if every
        term is finite on every process. A term is checked in float32 (an
        ``autocast`` loss in float16 that is inf is inf in float32 too)."""
        terms = loss_terms(log_vars)
        if not terms:
            return []
        values = torch.stack(
            [v.detach().float().reshape(()) for v in terms.values()])
        if _all_finite_everywhere(torch.isfinite(values).all()):
            return []
        bad = [k for k, v in terms.items() if not torch.isfinite(v).all()]
        if bad == ['loss']:
            return ['loss (the sum of finite terms overflows)']
        return [k for k in bad if k != 'loss'
                ] or ['a loss term on another process']

    def skip(self, reasons: Sequence[str], what: str,
             log_vars: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """Record a skipped step: warn, count, raise after too many.

        Args:
            reasons (Sequence[str]): The offending terms / parameters.
            what (str): ``'loss term(s)'`` or ``'gradient(s)'``.
            log_vars (dict): The step's log variables (for the values).

        Returns:
            dict: ``nonfinite.skipped`` (1) and ``nonfinite.skipped_total``
            (prefixed ``<part>.``).
        """
        self.skipped_total += 1
        self.consecutive += 1
        for r in reasons:
            if r not in self._culprits:
                self._culprits.append(r)
        values = ', '.join(
            f'{r}={log_vars[r].item():.4g}' if r in log_vars else r
            for r in reasons)
        ref = next(iter(log_vars.values()), torch.zeros(()))
        part = f'{self.part} ' if self.part else ''
        self.warn(
            f'{self.owner}: non-finite {part}{what} {values}; the {part}step '
            'is skipped (no parameter, buffer or optimizer state changed). '
            f'Skipped {part}steps: {self.skipped_total} in total, '
            f'{self.consecutive} in a row (training stops after '
            f'{self.max_consecutive} in a row).')
        if self.consecutive >= self.max_consecutive:
            raise NonFiniteLossError(
                f'{self.owner}: {self.consecutive} {part or "training "}steps '
                f'in a row had non-finite values '
                f'({", ".join(self._culprits)}); training stops. Check the '
                'input data for NaN/inf, lower the learning rate or the loss '
                'weights, or train in float32. `max_consecutive_nonfinite` '
                'of the distiller sets how many skipped steps in a row are '
                'tolerated.')
        prefix = f'{self.part}.nonfinite.' if self.part else 'nonfinite.'
        return {
            f'{prefix}skipped': ref.new_tensor(1.0),
            f'{prefix}skipped_total':
            ref.new_tensor(float(self.skipped_total)),
        }

    def passed(self) -> None:
        """A step that was not skipped: reset the run of skips."""
        self.consecutive = 0
        self._culprits = []

    def update_params(self,
                      optim_wrapper,
                      loss: Tensor,
                      log_vars: Dict[str, Tensor],
                      snapshot: Optional[BufferSnapshot],
                      param_names: Optional[Callable[[], Dict[int,
                                                              str]]] = None,
                      check_losses: bool = True) -> Dict[str, Tensor]:
        """``optim_wrapper.update_params(loss)``, guarded.

        Mirrors :meth:`mmengine.optim.OptimWrapper.update_params` (scale for
        gradient accumulation, backward, step and zero the gradients when the
        accumulation window is complete) with the checks of the module
        docstring in between. On a skipped step, the buffers in ``snapshot``
        (taken before the forward) are restored, the optimizer is not
        stepped and the gradients of this backward (if any) are zeroed. A
        loss scaler's own skips are left to it (module docstring).

        Returns:
            dict: Extra log variables (empty if the step was not skipped).
        """
        if check_losses:
            bad = self.losses_finite(log_vars)
            if bad:
                if snapshot is not None:
                    snapshot.restore()
                return self.skip(bad, 'loss term(s)', log_vars)
        count = getattr(optim_wrapper, '_inner_count', None)
        optim_wrapper.backward(optim_wrapper.scale_loss(loss))
        scaler = loss_scaler(optim_wrapper)
        if scaler is None and not grads_finite(optim_wrapper):
            bad = nonfinite_grad_names(optim_wrapper,
                                       param_names() if param_names else {})
            optim_wrapper.zero_grad()
            if count is not None:  # the skipped backward does not count
                optim_wrapper._inner_count = count
            if snapshot is not None:
                snapshot.restore()
            return self.skip([f'grad of {n}' for n in bad]
                             or ['a gradient on another process'],
                             'gradient(s)', log_vars)
        if optim_wrapper.should_update():
            scale = None if scaler is None else _current_scale(scaler)
            optim_wrapper.step()  # with a scaler: its step() and update()
            optim_wrapper.zero_grad()
            if scaler is not None and _scale_went_down(scaler, scale):
                now = float(scaler.get_scale())
                if now >= self.min_loss_scale:
                    if snapshot is not None:
                        snapshot.discard()
                    return {}  # the scaler's skip: not counted, not good
                if snapshot is not None:
                    snapshot.restore()
                return self.skip(
                    [f'gradients at loss scale {now:g} (below '
                     f'min_loss_scale={self.min_loss_scale:g}: not an '
                     'overflow of the scaled loss)'], 'gradient(s)',
                    log_vars)
        if snapshot is not None:
            snapshot.discard()
        self.passed()
        return {}
