"""The DDP wrapper of a :class:`Distiller` (whole model, one optimizer).

MMEngine's ``MMDistributedDataParallel.train_step`` runs its own
forward/backward/step and never calls the model's ``train_step``, so the
distiller's guarded step (non-finite losses and gradients skip the step on
every process, see :mod:`.nonfinite_guard`) would not run. This subclass
runs the distiller's step with the forward through DDP (so gradients are
synchronised as usual). ``tools/train.py`` selects it by itself
(:func:`mmkd.utils.setup_process`); with your own Runner set
``model_wrapper_cfg=dict(type='mmkd.DistillerDistributedDataParallel')``.

:class:`AdversarialDistiller` (two optimizers) needs MMEngine's
``MMSeparateDistributedDataParallel`` instead, which calls the model's
``train_step`` with each part wrapped separately.
"""
from mmengine.model import MMDistributedDataParallel

from mmkd.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class DistillerDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` whose ``train_step`` is the distiller's
    guarded step. Arguments as ``MMDistributedDataParallel``."""

    def __init__(self, module, **kwargs) -> None:
        wanted = getattr(module, 'ddp_wrapper', None)
        if wanted is None or 'DistillerDistributedDataParallel' not in wanted:
            raise TypeError(
                f'DistillerDistributedDataParallel wraps an mmkd Distiller '
                f'trained with one optimizer; {type(module).__name__} needs '
                f"model_wrapper_cfg=dict(type='{wanted}')" if wanted else
                'DistillerDistributedDataParallel wraps an mmkd Distiller, '
                f'got {type(module).__name__}')
        super().__init__(module=module, **kwargs)

    def train_step(self, data, optim_wrapper):
        """The distiller's guarded step, forward through this wrapper."""
        return self.module.guarded_train_step(data, optim_wrapper, model=self)
