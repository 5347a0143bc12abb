"""A distiller with an adversarial critic (SKD's holistic distillation)."""
import copy
import inspect
import logging
from typing import Any, Dict, Optional, Sequence, Tuple

import torch
from mmengine import dist
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapper, OptimWrapperDict
from torch import Tensor

from mmkd.registry import MODELS
from .distill_graph import to_float32
from .distiller import Distiller
from .nonfinite_guard import BufferSnapshot, grads_finite, has_loss_scaler
from .state_dict_keys import register_unwrap_hook

_CRITIC_ARGS = ('preds_S', 'preds_T')


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

    :meth:`train_step` follows the authors' ``optimize_parameters`` (one
    critic step per student step, ``n_critic = 1``):

    1. teacher forward (``no_grad``, eval mode) and student forward;
    2. student step on ``L_G = L_task + sum distill + lambda_d * (-mean
       D(s))`` with the ``student`` optimizer wrapper. The backward also
       leaves gradients on the critic; the ``student`` wrapper does not hold
       the critic's parameters, so they are not stepped;
    3. the critic's gradients are zeroed, then one critic step with the
       ``critic`` wrapper on the **same, now stale** student logits (computed
       before step 2) and the teacher logits, both detached, so the student
       is not changed by it.

    Zeroing the critic's gradients (rather than freezing the critic during
    the student backward) costs the critic's weight gradients in step 2,
    well under 1 % of a PSPNet-R18 step at 512x1024 (the critic sees
    1/8-resolution logits), and keeps every parameter used in every backward,
    which DDP expects.

    A non-finite critic loss (Wasserstein term or gradient penalty, on any
    rank) skips the critic step with a warning: no backward, and the
    critic's buffers (BN statistics, spectral-norm vectors) updated by that
    forward are restored, so the critic, and through it the student's
    holistic term, stays finite. ``critic.skipped`` is logged (0 or 1).

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
            outputs) the critic compares. Defaults to
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
        if 'loss' not in generator_loss_name:
            raise ValueError(
                "generator_loss_name must contain 'loss' (MMEngine sums only "
                f"log entries named so), got '{generator_loss_name}'")
        if generator_loss_name in self.graph.loss_cfgs:
            raise ValueError(f"generator_loss_name '{generator_loss_name}' "
                             'is already the name of a distillation loss')
        self.critic_inputs = critic_inputs
        self.generator_loss_name = generator_loss_name

        if not self.probe_shapes:  # the Distiller had nothing to probe
            self.probe(probe_input_shape)
        self.critic = self._build_critic(critic, self._critic_input_shapes())
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
        self._critic_snapshot = BufferSnapshot()
        register_unwrap_hook(self)

    # ----------------------------------------------------------- building
    def _critic_input_shapes(self) -> Dict[str, Tuple[int, ...]]:
        """Shapes of the critic's inputs in the dummy forward."""
        out = {}
        for arg, source in self.critic_inputs.items():
            if source not in self.probe_shapes:
                raise ValueError(
                    f"critic_inputs.{arg}='{source}' must be a tap giving a "
                    'tensor (B, C, H, W)')
            out[arg] = self.probe_shapes[source]
        if out['preds_S'] != out['preds_T'] or len(out['preds_S']) != 4:
            raise ValueError(
                'the critic compares student and teacher logits of the same '
                f'shape (B, C, H, W), got {out["preds_S"]} and '
                f'{out["preds_T"]} in the dummy forward')
        return out

    def _build_critic(self, cfg: dict, shapes: Dict[str, tuple]):
        cfg = copy.deepcopy(dict(cfg))
        cfg.setdefault('_scope_', 'mmkd')
        critic_cls = MODELS.get(cfg['type'])
        if critic_cls is None:
            raise KeyError(f"critic: type {cfg['type']!r} is not registered "
                           'in mmkd (or its parent registries)')
        channels = shapes['preds_S'][1]
        if 'in_channels' in inspect.signature(critic_cls.__init__).parameters:
            if cfg.get('in_channels', channels) != channels:
                raise ValueError(
                    f'critic: in_channels={cfg["in_channels"]} is given, but '
                    f"critic_inputs.preds_S ('{self.critic_inputs['preds_S']}'"
                    f') carries {channels} channels. Remove it to let mmkd '
                    'infer it.')
            cfg['in_channels'] = channels
        return MODELS.build(cfg)

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
        term) and the recorded values."""
        losses, values = self._losses(inputs, data_samples)
        preds_S, _, image = self._critic_tensors(values, inputs)
        self._check_critic_input(preds_S, inputs)
        value = self.generator_loss(self.critic, preds_S, image)
        scale = self.loss_scales.get(self.generator_loss_name, 1.0)
        losses[f'distill.{self.generator_loss_name}'] = (
            value * scale if scale != 1 else value)
        return losses, values

    def loss(self, inputs: Tensor, data_samples: list) -> dict:
        """Student task losses + ``distill.*`` losses (including the
        holistic generator term). The critic is trained in
        :meth:`train_step` only."""
        return self._student_losses(inputs, data_samples)[0]

    @staticmethod
    def _check_optim_wrapper(
            optim_wrapper) -> Tuple[OptimWrapper, OptimWrapper]:
        if not isinstance(optim_wrapper, OptimWrapperDict) or not {
                'student', 'critic'
        } <= set(optim_wrapper.keys()):
            raise TypeError(
                'AdversarialDistiller trains with two optimizer wrappers, '
                "'student' and 'critic'. Set optim_wrapper=dict(constructor="
                "'mmkd.DistillerOptimWrapperConstructor', student=dict("
                'optimizer=...), critic=dict(optimizer=...)); got '
                f'{type(optim_wrapper).__name__}')
        return optim_wrapper['student'], optim_wrapper['critic']

    def train_step(self, data,
                   optim_wrapper: OptimWrapperDict) -> Dict[str, Tensor]:
        """One student step then one critic step (see the class docstring).

        Args:
            data (dict | tuple | list): A batch from the dataloader.
            optim_wrapper (OptimWrapperDict): With ``student`` and ``critic``
                wrappers.

        Returns:
            dict: Log variables: ``loss`` and the student's losses, then
            ``critic.loss_wd``, ``critic.loss_gp`` and ``critic.skipped``
            (plus ``nonfinite.*`` on a skipped step).
        """
        student_ow, critic_ow = self._check_optim_wrapper(optim_wrapper)
        # student, connectors and critic, before the forward changes them
        snapshot = self.guard.snapshot.take(self)
        with student_ow.optim_context(self):
            data = self.data_preprocessor(data, True)
            inputs, data_samples = data['inputs'], data['data_samples']
            losses, values = self._student_losses(inputs, data_samples)
        parsed_loss, log_vars = self.parse_losses(losses)
        skipped = self.guard.update_params(student_ow, parsed_loss, log_vars,
                                           snapshot, self._param_names)
        if skipped:  # no critic step either: the whole step changes nothing
            critic_ow.zero_grad()
            log_vars.update(skipped)
            log_vars['critic.skipped'] = parsed_loss.new_tensor(1.0)
            return log_vars

        # Detached, and float32: under --amp the student's logits are bf16
        # or fp16, while the critic's step runs in its own (float32) wrapper.
        preds_S, preds_T, image = to_float32(
            [t if t is None else t.detach()
             for t in self._critic_tensors(values, inputs)])
        log_vars.update(self._critic_step(critic_ow, preds_S, preds_T, image))
        return log_vars

    def _critic_step(self, critic_ow: OptimWrapper, preds_S: Tensor,
                     preds_T: Tensor,
                     image: Optional[Tensor]) -> Dict[str, Tensor]:
        """One WGAN-GP step of the critic on detached logits."""
        # Drop the gradients the student's backward left on the critic.
        critic_ow.zero_grad()
        snapshot = self._critic_snapshot.take(self.critic)
        with critic_ow.optim_context(self.critic):
            terms = self.critic_loss(
                self.critic, preds_S, preds_T, image, return_dict=True)
        loss = sum(terms.values())
        finite = torch.isfinite(loss.detach()).float()
        dist.all_reduce(finite, op='min')  # skip on every rank together
        log_vars = {
            f"critic.{k.replace('loss_critic_', 'loss_')}": v.detach()
            for k, v in terms.items()
        }
        if finite.item() < 1:
            snapshot.restore()
            print_log(
                'AdversarialDistiller: non-finite critic loss '
                f'({", ".join(f"{k}={v.item()}" for k, v in log_vars.items())}'
                '); the critic step is skipped',
                logger='current',
                level=logging.WARNING)
            log_vars['critic.skipped'] = loss.new_tensor(1.0)
            return log_vars
        critic_ow.backward(critic_ow.scale_loss(loss))
        if not has_loss_scaler(critic_ow) and not grads_finite(critic_ow):
            critic_ow.zero_grad()
            snapshot.restore()
            print_log(
                'AdversarialDistiller: non-finite gradients of the critic; '
                'the critic step is skipped',
                logger='current',
                level=logging.WARNING)
            log_vars['critic.skipped'] = loss.new_tensor(1.0)
            return log_vars
        if critic_ow.should_update():
            critic_ow.step()
            critic_ow.zero_grad()
        log_vars['critic.skipped'] = loss.new_tensor(0.0)
        return log_vars
