from .autocast_optim_wrapper import AutocastOptimWrapper
from .distiller_optim_wrapper_constructor import \
    DistillerOptimWrapperConstructor

__all__ = ['AutocastOptimWrapper', 'DistillerOptimWrapperConstructor']
