"""A distiller with an adversarial critic (SKD's holistic distillation)."""
import logging
from typing import Any, Dict, Optional, Sequence, Tuple

from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapper, OptimWrapperDict
from torch import Tensor, nn

from mmkd.registry import MODELS
from .distill_graph import check_loss_name, to_float32
from .distiller import Distiller
from .nonfinite_guard import NonFiniteGuard
from .state_dict_keys import register_unwrap_hook

_CRITIC_ARGS = ('preds_S', 'preds_T')


def _warn(message: str) -> None:
    """The critic guard's warnings."""
    print_log(message, logger='current', level=logging.WARNING)


@MODELS.register_module()
class AdversarialDistiller(Distiller):
    """:class:`Distiller` plus a critic trained against the student, as the
    holistic distillation of SKD (Liu et al., CVPR 2019 / TPAMI, Sec. 3.1,
    ``l_ho``; docs/en/methods.md#skd-holistic).

    The student minimises its task losses, the ``distill.*`` losses of the
    :class:`Distiller` (pixel-wise, pair-wise...) and the holistic generator
    term ``-lambda_d * mean D(s)`` (:class:`HolisticGeneratorLoss`, logged as
    ``distill.loss_holistic``). The critic ``D`` scores whole segmentation
    maps and is trained by WGAN-GP (:class:`HolisticCriticLoss`) to score
    the teacher's above the student's.

    The training step is the :class:`Distiller`'s
    (:meth:`~Distiller.guarded_train_step`) with the critic step plugged in
    after the student's update; it follows the authors'
    ``optimize_parameters`` (one critic step per student step,
    ``n_critic = 1``):

    1. teacher forward (``no_grad``, eval mode) and student forward
       (:meth:`_train_forward`);
    2. student step on ``L_G = L_task + sum distill + lambda_d * (-mean
       D(s))`` with the ``student`` optimizer wrapper. The backward also
       leaves gradients on the critic; the ``student`` wrapper does not hold
       the critic's parameters, so they are not stepped;
    3. the critic's gradients are zeroed, then one critic step with the
       ``critic`` wrapper on the **same, now stale** student logits (computed
       before step 2) and the teacher logits, both detached, so the student
       is not changed by it (:meth:`_after_student_update`).

    Zeroing the critic's gradients (rather than freezing the critic during
    the student backward) costs the critic's weight gradients in step 2, a
    small part of the step (the critic sees 1/8-resolution logits; measured
    in docs/en/benchmark.md, "SKD"), and keeps every parameter used in every
    backward, which DDP expects.

    The critic step is guarded as the student's, by a
    :class:`NonFiniteGuard` of its own (:attr:`critic_guard`, its own count):
    a non-finite critic loss term (Wasserstein term or gradient penalty, on
    any rank) or gradient skips the critic step with a warning, the critic's
    buffers (BN statistics, spectral-norm vectors) updated by that forward
    are restored and its optimizer is not stepped, so the critic, and
    through it the student's holistic term, stays finite.
    ``critic.skipped`` is logged (0 or 1), and on a skipped critic step
    ``critic.nonfinite.skipped`` and ``critic.nonfinite.skipped_total``;
    ``max_consecutive_nonfinite`` skipped critic steps in a row stop
    training with :class:`NonFiniteLossError`.

    The critic input is chosen by the critic (:class:`SKDDiscriminator`'s
    ``input_mode``): raw logits through BN (master code, no image) or
    ``cat(image, softmax(logits))`` (``cvpr_19`` code, the conditional
    critic of the CVPR paper), where the image is the normalised batch the
    student sees (``inputs`` after the data preprocessor), resized to the
    logits by the critic.

    The critic's parameters are in the distiller's ``state_dict``
    (``critic.*``, so training resumes) but not in the converted student
    checkpoint (``tools/convert_to_student.py`` keeps ``student.*`` only).

    Training needs two optimizer wrappers; build them with
    :class:`~mmkd.engine.DistillerOptimWrapperConstructor`::

        optim_wrapper = dict(
            constructor='mmkd.DistillerOptimWrapperConstructor',
            student=dict(type='OptimWrapper', optimizer=...),
            critic=dict(type='OptimWrapper', optimizer=...))

    For distributed training use ``model_wrapper_cfg=dict(
    type='MMSeparateDistributedDataParallel')`` (``tools/train.py`` sets it
    when the config has none): MMEngine's default DDP wrapper runs its own
    train step and would never train the critic.

    As the :class:`Distiller`'s, a step with a non-finite student loss term
    or gradient changes nothing (the critic included: its buffers are
    restored and its step is skipped).

    Args:
        student, teacher, taps, connectors, losses, probe_input_shape,
        max_consecutive_nonfinite, data_preprocessor, init_cfg: As
            :class:`Distiller`.
        critic (dict): The critic's config, e.g.
            ``dict(type='SKDDiscriminator')``. ``in_channels`` is inferred
            from the ``preds_S`` source (checked if given).
        critic_inputs (dict): ``dict(preds_S=<source>, preds_T=<source>)``:
            the student's and the teacher's logits (taps or connector
            outputs, each one tensor ``(B, C, H, W)`` of the same shape)
            the critic compares. Defaults to
            ``dict(preds_S='s_logits', preds_T='t_logits')``.
        generator_loss (dict): The student's adversarial term. Defaults to
            ``dict(type='HolisticGeneratorLoss', loss_weight=0.1)``
            (``lambda_d = 0.1``).
        critic_loss (dict): The critic's loss. Defaults to
            ``dict(type='HolisticCriticLoss', lambda_gp=10.0,
            loss_weight=0.1)``.
        generator_loss_name (str): Name of the generator term in the logs
            (``distill.<name>``) and in ``loss_scales``. Defaults to
            ``'loss_holistic'``.
        condition_on_image (bool, optional): Pass the input batch to the
            critic. ``None`` (default): True iff the critic's ``input_mode``
            contains ``'image'``.
    """

    #: The DDP wrapper :func:`mmkd.utils.setup_process` selects: one DDP per
    #: part, and this model's own train_step.
    ddp_wrapper = 'MMSeparateDistributedDataParallel'

    def __init__(self,
                 student: dict,
                 critic: dict,
                 teacher: Optional[dict] = None,
                 taps: Optional[Dict[str, Any]] = None,
                 connectors: Optional[Dict[str, dict]] = None,
                 losses: Optional[Dict[str, dict]] = None,
                 critic_inputs: Optional[Dict[str, str]] = None,
                 generator_loss: Optional[dict] = None,
                 critic_loss: Optional[dict] = None,
                 generator_loss_name: str = 'loss_holistic',
                 condition_on_image: Optional[bool] = None,
                 probe_input_shape: Optional[Sequence[int]] = None,
                 max_consecutive_nonfinite: int = 10,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            student=student,
            teacher=teacher,
            taps=taps,
            connectors=connectors,
            losses=losses,
            probe_input_shape=probe_input_shape,
            max_consecutive_nonfinite=max_consecutive_nonfinite,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        critic_inputs = dict(
            critic_inputs or dict(preds_S='s_logits', preds_T='t_logits'))
        if set(critic_inputs) != set(_CRITIC_ARGS):
            raise ValueError(
                'critic_inputs must map exactly preds_S and preds_T (the '
                "student's and the teacher's logits) to taps, got "
                f'{sorted(critic_inputs)}')
        for arg, source in critic_inputs.items():
            if not isinstance(source, str):
                raise ValueError(f'critic_inputs.{arg} must be one tap or '
                                 f'connector output, got {source!r}')
            self.graph.check_source(f'critic_inputs ({arg})', source)
        check_loss_name(generator_loss_name, 'generator_loss_name')
        if generator_loss_name in self.graph.loss_cfgs:
            raise ValueError(f"generator_loss_name '{generator_loss_name}' "
                             'is already the name of a distillation loss')
        self.critic_inputs = critic_inputs
        self.generator_loss_name = generator_loss_name

        self._check_critic_input_shapes()
        source = critic_inputs['preds_S']
        self.critic = self.graph.build_module(
            'critic', critic,
            dict(in_channels=(f"critic_inputs.preds_S ('{source}')", source)))
        if condition_on_image is None:
            condition_on_image = 'image' in str(
                getattr(self.critic, 'input_mode', ''))
        self.condition_on_image = condition_on_image
        self.generator_loss = MODELS.build(
            dict(
                generator_loss
                or dict(type='HolisticGeneratorLoss', loss_weight=0.1),
                _scope_='mmkd'))
        self.critic_loss = MODELS.build(
            dict(
                critic_loss or dict(
                    type='HolisticCriticLoss', lambda_gp=10.0,
                    loss_weight=0.1),
                _scope_='mmkd'))
        #: Guards the critic's step (its own count of skipped steps).
        self.critic_guard = NonFiniteGuard(
            max_consecutive_nonfinite,
            type(self).__name__,
            part='critic',
            warn=_warn)
        register_unwrap_hook(self)

    # ----------------------------------------------------------- building
    def _check_critic_input_shapes(self) -> None:
        """Raise unless the critic's inputs were one tensor each, of the
        same shape ``(B, C, H, W)``, in the dummy forward."""
        shapes = {}
        for arg, source in self.critic_inputs.items():
            try:
                shape = self.graph.shape_of(source)
            except KeyError:  # ground truth: not in the probe
                shape = None
            if not isinstance(shape, tuple):
                raise ValueError(
                    f"critic_inputs.{arg}='{source}' must be a tap or "
                    'connector output giving one tensor (B, C, H, W), got '
                    f'{shape} in the dummy forward')
            shapes[arg] = shape
        if shapes['preds_S'] != shapes['preds_T'] or len(
                shapes['preds_S']) != 4:
            raise ValueError(
                'the critic compares student and teacher logits of the same '
                f'shape (B, C, H, W), got {shapes["preds_S"]} and '
                f'{shapes["preds_T"]} in the dummy forward')

    # ----------------------------------------------------------- training
    def _critic_tensors(
            self, values: Dict[str, Any],
            inputs: Tensor) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
        preds_S = self.graph.resolve(self.critic_inputs['preds_S'], values)
        preds_T = self.graph.resolve(self.critic_inputs['preds_T'], values)
        image = inputs if self.condition_on_image else None
        return preds_S, preds_T, image

    def _check_critic_input(self, logits: Tensor, inputs: Tensor) -> None:
        """Raise, naming the knobs, if the logits are too small for the
        critic (a critic with ``output_size(side)``, e.g. SKDDiscriminator)."""
        critic = self.critic.module if is_model_wrapper(
            self.critic) else self.critic
        output_size = getattr(critic, 'output_size', None)
        if output_size is None:
            return
        H, W = logits.shape[-2:]
        if output_size(H) >= 1 and output_size(W) >= 1:
            return
        need = next(s for s in range(1, 1 << 16) if output_size(s) >= 1)
        in_h, in_w = inputs.shape[-2:]
        blocks = getattr(critic, 'num_blocks', '?')
        raise ValueError(
            f"AdversarialDistiller: the critic's input, critic_inputs."
            f"preds_S ('{self.critic_inputs['preds_S']}'), is {H}x{W} in "
            f'this step, but {type(critic).__name__} with '
            f'num_blocks={blocks} needs at least {need}x{need}. The logits '
            'are the input (here '
            f'{in_h}x{in_w}) divided by the student\'s output stride (here '
            f'{in_h // max(H, 1)}). Use one of: a larger crop (the training '
            "pipeline's crop size, e.g. RandomCrop's crop_size, and the "
            "data preprocessor's size), a smaller output stride of the "
            'student (dilated last stages, e.g. ResNetV1c with strides=(1, '
            '2, 1, 1), dilations=(1, 1, 2, 4) for stride 8), or a shallower '
            'critic (critic=dict(num_blocks=...): each block halves the '
            'map, then a 4x4 conv).')

    def _student_losses(self, inputs: Tensor, data_samples: list):
        """The student's losses (task + ``distill.*`` + holistic generator
        term), and the tap values and connector outputs."""
        losses, values = self._losses(inputs, data_samples)
        preds_S, _, image = self._critic_tensors(values, inputs)
        self._check_critic_input(preds_S, inputs)
        value = self.generator_loss(self.critic, preds_S, image)
        losses[f'distill.{self.generator_loss_name}'] = self.graph.scaled(
            self.generator_loss_name, value)
        return losses, values

    def loss(self, inputs: Tensor, data_samples: list) -> dict:
        """Student task losses + ``distill.*`` losses (including the
        holistic generator term). The critic is trained in
        :meth:`train_step` only."""
        return self._student_losses(inputs, data_samples)[0]

    def _student_optim_wrapper(self, optim_wrapper) -> OptimWrapper:
        """The ``student`` wrapper of the two (the other: ``critic``)."""
        if not isinstance(optim_wrapper, OptimWrapperDict) or not {
                'student', 'critic'
        } <= set(optim_wrapper.keys()):
            raise TypeError(
                'AdversarialDistiller trains with two optimizer wrappers, '
                "'student' and 'critic'. Set optim_wrapper=dict(constructor="
                "'mmkd.DistillerOptimWrapperConstructor', student=dict("
                'optimizer=...), critic=dict(optimizer=...)); got '
                f'{type(optim_wrapper).__name__}')
        return optim_wrapper['student']

    def _train_forward(self, model: nn.Module, data: dict):
        """The student's losses, and the critic's inputs of step 3: the
        student's and the teacher's logits (and the image), detached.

        ``model`` is this distiller: under
        ``MMSeparateDistributedDataParallel`` the student and the critic are
        wrapped separately and this distiller's own step runs."""
        inputs, data_samples = data['inputs'], data['data_samples']
        losses, values = self._student_losses(inputs, data_samples)
        # float32: under --amp the student's logits are bf16 or fp16, while
        # the critic's step runs in its own (float32) wrapper.
        critic_batch = to_float32([
            t if t is None else t.detach()
            for t in self._critic_tensors(values, inputs)
        ])
        return losses, critic_batch

    def _after_student_update(self, optim_wrapper: OptimWrapperDict,
                              critic_batch: list,
                              skipped: bool) -> Dict[str, Tensor]:
        """Step 3: one guarded WGAN-GP step of the critic on the detached
        logits of the forward (none if the student's update was skipped:
        then the whole step changes nothing)."""
        critic_ow = optim_wrapper['critic']
        # Drop the gradients the student's backward left on the critic.
        critic_ow.zero_grad()
        preds_S, preds_T, image = critic_batch
        if skipped:
            return {'critic.skipped': preds_S.new_tensor(1.0)}
        snapshot = self.critic_guard.snapshot.take(self.critic)
        with critic_ow.optim_context(self.critic):
            terms = self.critic_loss(
                self.critic, preds_S, preds_T, image, return_dict=True)
        loss = sum(terms.values())
        log_vars = {
            f"critic.{k.replace('loss_critic_', 'loss_')}": v.detach()
            for k, v in terms.items()
        }
        # The guard checks the terms and their sum ('loss').
        skip = self.critic_guard.update_params(
            critic_ow, loss, dict(log_vars, loss=loss.detach()), snapshot,
            self._critic_param_names)
        log_vars.update(skip)
        log_vars['critic.skipped'] = loss.new_tensor(float(bool(skip)))
        return log_vars

    def _critic_param_names(self) -> Dict[int, str]:
        return {
            id(p): f'critic.{n}'
            for n, p in self.critic.named_parameters()
        }
