from .exact_resume_loops import (ExactResumeEpochBasedTrainLoop,
                                 ExactResumeIterBasedTrainLoop,
                                 get_rng_state, set_rng_state)
from .safe_training import enable_safe_checkpoints, uses_mmkd

__all__ = [
    'ExactResumeEpochBasedTrainLoop', 'ExactResumeIterBasedTrainLoop',
    'enable_safe_checkpoints', 'get_rng_state', 'set_rng_state', 'uses_mmkd'
]
