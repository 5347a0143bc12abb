"""The task-agnostic distiller: a student, an optional frozen teacher, taps,
connectors and losses."""
import copy
from contextlib import nullcontext
from typing import Any, Dict, Optional, Sequence

import torch
from mmengine.model import BaseModel
from torch import nn

from mmkd.registry import MODELS
from ..utils import build_task_model, build_teacher, probe_ground_truth
from .distill_graph import DistillGraph, to_float32
from .extra_heads import extract_feat_runs_heads, heads_to_run
from .feature_tap import FeatureTap, StopForward, TapError, TapRecorder
from .nonfinite_guard import NonFiniteGuard


@MODELS.register_module()
class Distiller(BaseModel):
    """Distil a task model of mmpretrain, mmdet or mmseg, leaving it unchanged.

    Training returns the student's own task losses plus every distillation
    loss, prefixed ``distill.`` (e.g. ``distill.loss_kd``); a student loss
    named plainly ``loss`` (mmpretrain's heads) is logged as
    ``student.loss``, since MMEngine logs the total under ``loss``.
    Validation, test and predict run the student alone, so the task
    library's evaluator reports exactly the student's results.

    Features are recorded by forward hooks (*taps*) on module paths of the
    student and of the teacher. *Connectors* (trainable: adapters, the FRSKD
    self-teacher, the ReviewKD review path) transform them, and *losses*
    compare them. Every name a connector or loss refers to is checked when the
    model is built, and one dummy forward infers the connectors' channel
    counts and checks every shape (:class:`DistillGraph` holds this wiring).
    The dummy forward runs for every distiller, so a tap that does not run
    fails at build even when no connector or loss uses it.

    A training step (:meth:`guarded_train_step`) whose loss terms or
    gradients are not finite changes nothing (parameters, buffers such as BN
    statistics, optimizer state) and is logged; ``max_consecutive_nonfinite``
    such steps in a row stop training (see :mod:`.nonfinite_guard`). Under
    DDP the same step runs through :class:`DistillerDistributedDataParallel`.

    ``copy.deepcopy`` (MMEngine's ``EMAHook`` copies the model) gives a
    distiller with its own taps and hooks; the frozen teacher is shared by
    the copies (it is not trained and not in the state dict).

    Args:
        student (dict): The task model's config, e.g. ``_base_.model``.
        teacher (dict, optional): ``dict(config=<path or 'mmdet::...'>,
            checkpoint=<path>)`` or ``dict(model=<model dict>,
            checkpoint=...)``.
            The teacher is frozen (eval mode, no gradients), runs under
            ``torch.no_grad()`` only as far as its taps need, and is not part
            of the distiller's ``state_dict``: checkpoints hold the student and
            the connectors only. ``None`` for self-distillation.
        taps (dict): ``name -> 'student.<module path>'`` or
            ``name -> dict(path=..., io='output'|'input', call=None,
            index=None, run_head=None)``, see :class:`FeatureTap`;
            ``run_head`` runs a head that the tensor-mode forward skips
            (e.g. ``'auxiliary_head'``), see :mod:`.extra_heads`.
        connectors (dict): ``name -> dict(type=..., inputs=<tap(s)>,
            targets=<tap(s)>, ...)``; ``in_channels``/``out_channels`` are
            inferred from ``inputs``/``targets`` when the connector takes them.
            Their outputs are named by the connector's name (``name.key`` for
            a dict output).
        losses (dict): ``name -> dict(type=..., inputs=dict(<arg>=<source>),
            ...)`` where a source is a tap, a connector output, a list of them,
            or ground truth (``'gt_label'``, ``'gt_sem_seg'``,
            ``'gt_instances'`` or a key registered with
            :func:`mmkd.models.utils.ground_truth.register_ground_truth`).
            Names must contain ``'loss'``.
        probe_input_shape (tuple, optional): (C, H, W) of the dummy input
            used to infer shapes. Defaults to the student's first conv's input
            channels at 128 x 128.
        max_consecutive_nonfinite (int): Skipped (non-finite) training steps
            in a row after which training stops with an error. Defaults to 10.
        data_preprocessor (dict, optional): Given by the runner from the
            config's top-level ``data_preprocessor``; passed to the student if
            its config has none. The distiller uses the student's.
    """

    #: The DDP wrapper :func:`mmkd.utils.setup_process` selects.
    ddp_wrapper = 'mmkd.DistillerDistributedDataParallel'

    def __init__(self,
                 student: dict,
                 teacher: Optional[dict] = None,
                 taps: Optional[Dict[str, Any]] = None,
                 connectors: Optional[Dict[str, dict]] = None,
                 losses: Optional[Dict[str, dict]] = None,
                 probe_input_shape: Optional[Sequence[int]] = None,
                 max_consecutive_nonfinite: int = 10,
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

        taps = {
            name: FeatureTap.from_cfg(name, cfg)
            for name, cfg in (taps or {}).items()
        }
        if self.teacher is None and any(t.model == 'teacher'
                                        for t in taps.values()):
            raise ValueError('taps name the teacher, but no teacher is '
                             'given (teacher=None)')
        self.taps = taps
        self._student_recorder = TapRecorder(
            self.student, [t for t in taps.values() if t.model == 'student'])
        self._teacher_recorder = self._make_teacher_recorder()
        # Heads run on extract_feat's output in tensor mode (run_head).
        self._student_heads = heads_to_run(
            self.student, 'student', self._student_recorder.taps)
        self._teacher_heads = heads_to_run(
            self.teacher, 'teacher', self._teacher_recorder.taps
        ) if self.teacher is not None else ()

        self.graph = DistillGraph(list(taps), connectors, losses)
        self.connectors = self.graph.connectors
        self.distill_losses = self.graph.losses
        self.guard = NonFiniteGuard(max_consecutive_nonfinite,
                                    type(self).__name__)
        #: Shapes of the tensor taps in the dummy forward.
        self.probe_shapes: Dict[str, tuple] = {}
        self.graph.build(
            self.probe(probe_input_shape),
            training=self.student.training,
            probe_gt=self._probe_ground_truth)

    def _probe_ground_truth(self, loss: str, key: str) -> Any:
        """The stand-in of ground truth ``key`` for the probe's batch
        (``None``: the key has none, and the loss is not run at build)."""
        inputs = torch.zeros((2, ) + tuple(self.probe_input_shape))
        try:
            return probe_ground_truth(key, inputs, self.student)
        except ValueError as e:
            raise ValueError(f"loss '{loss}': {e}") from e

    def _make_teacher_recorder(self) -> Optional[TapRecorder]:
        if self.teacher is None:
            return None
        return TapRecorder(
            self.teacher,
            [t for t in self.taps.values() if t.model == 'teacher'])

    @property
    def loss_scales(self) -> Dict[str, float]:
        """Per-loss multipliers, set every iteration by hooks (warm-up...)."""
        return self.graph.loss_scales

    @loss_scales.setter
    def loss_scales(self, value: Dict[str, float]) -> None:
        self.graph.loss_scales = value

    # ----------------------------------------------------------- building
    def _default_probe_shape(self) -> tuple:
        for module in self.student.modules():
            if isinstance(module, nn.Conv2d):
                return (module.in_channels, 128, 128)
        raise ValueError('cannot guess the input shape of the student (no '
                         'Conv2d found); set probe_input_shape=(C, H, W)')

    @torch.no_grad()
    def probe(self, probe_input_shape=None) -> Dict[str, Any]:
        """Run one dummy forward (batch of 2 zero images, the student in eval
        and tensor mode) and return the tap values."""
        shape = tuple(probe_input_shape or self._default_probe_shape())
        #: (C, H, W) of the dummy input the shapes were inferred with.
        self.probe_input_shape = shape
        inputs = torch.zeros((2, ) + shape)
        was_training = self.student.training
        self.student.eval()
        try:
            values = self._record(
                inputs, None, student_mode='tensor', probe=True)[0]
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
        self.probe_shapes = {
            k: tuple(v.shape)
            for k, v in values.items() if torch.is_tensor(v)
        }
        return values

    def _probe_tap_error(self, tap: FeatureTap,
                         input_shape: tuple) -> TapError:
        when = ('the teacher runs in tensor mode in training too'
                if tap.model == 'teacher' else
                'training runs the student in loss mode, but the probe has '
                'no data samples for it')
        return TapError(
            f"tap '{tap.name}' ({tap.path}): the module did not run in the "
            "probe. mmkd infers the connectors' channels and checks the "
            f'losses with one dummy forward of a {input_shape} zero batch, '
            f"running the {tap.model} in tensor mode (mode='tensor'; {when}),"
            ' and this module is not on that path (e.g. an auxiliary head, '
            'or a loss-only branch of a detector head). Tap a module that '
            'the tensor-mode forward runs: the backbone, neck or decode head '
            "(the auxiliary head's input is a backbone stage: "
            f"dict(path='{tap.model}.backbone', index=<stage>)), or have the "
            'tap run the head on the extracted features: '
            f"dict(path='{tap.model}.auxiliary_head.conv_seg', "
            "run_head='auxiliary_head').")

    # ----------------------------------------------------------- running
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
        with torch.no_grad(), extract_feat_runs_heads(self.teacher,
                                                      self._teacher_heads):
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
        # In loss mode the student's forward runs all its heads itself.
        heads = extract_feat_runs_heads(
            self.student, self._student_heads
        ) if student_mode == 'tensor' else nullcontext()
        try:
            self.run_teacher(inputs, data_samples, probe=probe)
            with heads:
                out = self._run_tapped(
                    self._student_recorder,
                    lambda: self.student(
                        inputs, data_samples, mode=student_mode),
                    early_stop=False,
                    probe=probe)
            if probe:
                for tap in self.taps.values():
                    if not tap.calls:
                        raise self._probe_tap_error(tap, tuple(inputs.shape))
            # The teacher's features (bf16/fp16 with a low-precision
            # teacher or under autocast) are handed on as float32.
            return {
                name:
                to_float32(tap.get()) if tap.model == 'teacher' else tap.get()
                for name, tap in self.taps.items()
            }, out
        finally:
            # The values are returned; the taps keep no tensor of the step.
            for tap in self.taps.values():
                tap.reset()

    def extract_features(
            self,
            inputs: torch.Tensor,
            data_samples: Optional[list] = None) -> Dict[str, Any]:
        """The tap values and the connector outputs of one forward of the
        teacher and the student (tensor mode), by name; the models keep
        their modes (call ``eval()`` and ``torch.no_grad()`` to look at
        features, as ``tools/visualize_taps.py``)."""
        values, _ = self._record(inputs, data_samples, 'tensor')
        return dict(values, **self.graph.run_connectors(values))

    def compute_distill_losses(self, values: Dict[str, Any],
                               data_samples: Optional[list]) -> dict:
        """Connectors then losses, from the recorded tap values."""
        return self.graph.compute_losses(values, data_samples)[0]

    def loss(self, inputs: torch.Tensor, data_samples: list) -> dict:
        """Student task losses + ``distill.*`` losses."""
        return self._losses(inputs, data_samples)[0]

    def _losses(self, inputs: torch.Tensor, data_samples: list):
        """The losses of :meth:`loss`, and the tap values and connector
        outputs of the step."""
        values, task_losses = self._record(inputs, data_samples, 'loss')
        losses = dict(task_losses)
        if 'loss' in losses:
            # MMEngine logs the total under 'loss'; a student loss named so
            # (mmpretrain's heads) would overwrite it in the log.
            losses['student.loss'] = losses.pop('loss')
        distill_losses, outputs = self.graph.compute_losses(
            values, data_samples)
        losses.update(distill_losses)
        return losses, dict(values, **outputs)

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

    # ----------------------------------------------------------- training
    def train_step(self, data, optim_wrapper) -> Dict[str, torch.Tensor]:
        """One guarded step, see :meth:`guarded_train_step`."""
        return self.guarded_train_step(data, optim_wrapper)

    def guarded_train_step(
            self,
            data,
            optim_wrapper,
            model: Optional[nn.Module] = None) -> Dict[str, torch.Tensor]:
        """The training step of every distiller, top to bottom.

        As MMEngine's ``BaseModel.train_step``, except that a step with a
        non-finite loss term or gradient changes nothing and is logged
        (``nonfinite.skipped``, ``nonfinite.skipped_total``):

        1. the buffers (BN statistics, spectral-norm vectors; a critic's
           too) are copied before the forward changes them;
        2. data preprocessing and forward (:meth:`_train_forward`) in the
           context of the student's optimizer wrapper (autocast, no
           gradient sync while gradients accumulate);
        3. the student's guarded update
           (:meth:`NonFiniteGuard.update_params`): the loss terms are
           checked, backward, the gradients are checked (unless a loss
           scaler does), step; a failed check puts the buffers back and
           skips the rest;
        4. :meth:`_after_student_update`, told whether step 3 was skipped:
           nothing here, the critic's own guarded step in
           :class:`AdversarialDistiller`.

        Args:
            data (dict | tuple | list): A batch from the dataloader.
            optim_wrapper (OptimWrapper | OptimWrapperDict): The wrapper(s);
                :meth:`_student_optim_wrapper` picks the student's.
            model (nn.Module, optional): Runs the forward: this distiller
                (default) or the DDP wrapper around it.

        Returns:
            dict: Log variables: ``loss`` and the student's losses, plus
            ``nonfinite.*`` on a skipped step and those of step 4.
        """
        model = self if model is None else model
        student_ow = self._student_optim_wrapper(optim_wrapper)
        snapshot = self.guard.snapshot.take(self)  # before BN changes
        try:
            with student_ow.optim_context(model):
                data = self.data_preprocessor(data, True)
                losses, carried = self._train_forward(model, data)
            parsed_loss, log_vars = self.parse_losses(losses)
            skipped = self.guard.update_params(student_ow, parsed_loss,
                                               log_vars, snapshot,
                                               self._param_names)
        except BaseException:
            snapshot.discard()  # modules that undo their writes stop logging
            raise
        log_vars.update(skipped)
        log_vars.update(
            self._after_student_update(optim_wrapper, carried, bool(skipped)))
        return log_vars

    # The hooks of the step (AdversarialDistiller overrides them).
    def _student_optim_wrapper(self, optim_wrapper):
        """The wrapper of the student's update: the one wrapper here."""
        return optim_wrapper

    def _train_forward(self, model: nn.Module, data: dict):
        """The step's losses (forward through ``model``) and what
        :meth:`_after_student_update` needs from the forward (nothing
        here)."""
        return model._run_forward(data, mode='loss'), None

    def _after_student_update(self, optim_wrapper, carried: Any,
                              skipped: bool) -> Dict[str, torch.Tensor]:
        """Run after the student's update (``skipped``: the guard skipped
        it); return extra log variables. Nothing here."""
        return {}

    def _param_names(self) -> Dict[int, str]:
        return {id(p): n for n, p in self.named_parameters()}

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

    def __deepcopy__(self, memo) -> 'Distiller':
        """A copy with its own student, connectors, losses, taps and hooks;
        the frozen teacher is shared (and gets hooks for the copy's taps)."""
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        if self.teacher is not None:
            memo[id(self.teacher)] = self.teacher
        for key, value in self.__dict__.items():
            if key != '_teacher_recorder':
                object.__setattr__(new, key, copy.deepcopy(value, memo))
        object.__setattr__(new, '_teacher_recorder',
                           new._make_teacher_recorder())
        return new

    def extra_repr(self) -> str:
        teacher = type(self.teacher).__name__ if self.teacher is not None \
            else 'None (self-distillation)'
        return f'teacher: {teacher} (frozen, not in state_dict)'
