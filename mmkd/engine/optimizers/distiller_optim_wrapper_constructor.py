"""One optimizer wrapper per part of a distiller (e.g. student and critic)."""
import copy
from collections import OrderedDict
from typing import Dict, Optional

from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapperDict
from torch import nn

from mmkd.registry import OPTIM_WRAPPER_CONSTRUCTORS


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class DistillerOptimWrapperConstructor:
    """Build an :class:`~mmengine.optim.OptimWrapperDict` for a distiller
    trained with several optimizers (SKD: the student and the critic).

    The config holds one ordinary optimizer-wrapper config per key. A key
    other than ``rest_key`` is the name of a top-level sub-module of the
    distiller (e.g. ``critic``) and gets that module's parameters. The
    ``rest_key`` wrapper (``student`` by default) gets **every other
    parameter**: the student's and the trainable connectors'. Each wrapper
    is built by :class:`~mmengine.optim.DefaultOptimWrapperConstructor` (or
    the ``constructor`` given in its own config), so ``paramwise_cfg`` works
    per wrapper and parameter names keep the distiller's prefixes (e.g.
    ``custom_keys={'student.backbone': ...}``)::

        optim_wrapper = dict(
            constructor='mmkd.DistillerOptimWrapperConstructor',
            student=dict(type='OptimWrapper',
                         optimizer=dict(type='SGD', lr=0.01, momentum=0.9,
                                        weight_decay=5e-4)),
            critic=dict(type='OptimWrapper',
                        optimizer=dict(type='SGD', lr=4e-4, momentum=0.9,
                                       weight_decay=5e-4)))

    Parameter schedulers are then given per wrapper,
    ``param_scheduler=dict(student=[...], critic=[...])`` (MMEngine's
    multi-optimizer convention).

    Args:
        optim_wrapper_cfg (dict): ``name -> optimizer wrapper config``.
        paramwise_cfg (dict, optional): Not supported at this level (set it
            inside each wrapper's config); must be None.
        rest_key (str): The wrapper that takes the parameters no other
            wrapper claims. Defaults to ``'student'``.
    """

    def __init__(self,
                 optim_wrapper_cfg: dict,
                 paramwise_cfg: Optional[dict] = None,
                 rest_key: str = 'student') -> None:
        if paramwise_cfg is not None:
            raise ValueError(
                'DistillerOptimWrapperConstructor: set `paramwise_cfg` inside '
                'each wrapper config (e.g. student=dict(..., paramwise_cfg='
                '...)), not next to the constructor')
        cfg = dict(copy.deepcopy(optim_wrapper_cfg))
        if rest_key not in cfg:
            raise ValueError(
                f'DistillerOptimWrapperConstructor needs a `{rest_key}` '
                'optimizer wrapper (it takes every parameter that no other '
                f'wrapper claims); got wrappers {sorted(cfg)}')
        for name, sub in cfg.items():
            if not isinstance(sub, dict) or 'optimizer' not in sub:
                raise ValueError(
                    f"DistillerOptimWrapperConstructor: wrapper '{name}' must "
                    'be an optimizer wrapper config with an `optimizer`, got '
                    f'{sub!r}')
        self.optim_wrapper_cfg = cfg
        self.rest_key = rest_key

    @staticmethod
    def _build_one(cfg: dict, module: nn.Module):
        cfg = dict(cfg)
        constructor = cfg.pop('constructor', 'DefaultOptimWrapperConstructor')
        paramwise_cfg = cfg.pop('paramwise_cfg', None)
        builder = OPTIM_WRAPPER_CONSTRUCTORS.build(
            dict(
                type=constructor,
                optim_wrapper_cfg=cfg,
                paramwise_cfg=paramwise_cfg))
        return builder(module)

    def __call__(self, model: nn.Module) -> OptimWrapperDict:
        if is_model_wrapper(model):
            model = model.module
        children = dict(model.named_children())
        claimed: Dict[str, nn.Module] = OrderedDict()
        for name in self.optim_wrapper_cfg:
            if name == self.rest_key:
                continue
            if name not in children:
                raise ValueError(
                    f"DistillerOptimWrapperConstructor: wrapper '{name}' must "
                    'be named after a top-level sub-module of the model '
                    f'({", ".join(children)})')
            if next(children[name].parameters(), None) is None:
                raise ValueError(
                    f"DistillerOptimWrapperConstructor: the model's '{name}' "
                    'has no parameters to optimise')
            claimed[name] = children[name]

        # The rest: a container holding every other child under its own
        # name, so parameter names (and paramwise custom_keys) are the
        # distiller's ones.
        rest = nn.Module()
        for name, child in children.items():
            if name not in claimed:
                rest.add_module(name, child)
        for name, param in model.named_parameters(recurse=False):
            rest.register_parameter(name, param)
        claimed_ids = {
            id(p)
            for module in claimed.values()
            for p in module.parameters()
        }
        shared = [
            n for n, p in rest.named_parameters() if id(p) in claimed_ids
        ]
        if shared:
            raise ValueError(
                'DistillerOptimWrapperConstructor: parameters shared between '
                f'wrappers would be stepped twice: {shared[:5]}')
        if next(rest.parameters(), None) is None:
            raise ValueError(
                f"DistillerOptimWrapperConstructor: no parameter is left for "
                f"the '{self.rest_key}' wrapper")

        wrappers = OrderedDict()
        wrappers[self.rest_key] = self._build_one(
            self.optim_wrapper_cfg[self.rest_key], rest)
        for name, module in claimed.items():
            wrappers[name] = self._build_one(self.optim_wrapper_cfg[name],
                                             module)
        return OptimWrapperDict(**wrappers)
