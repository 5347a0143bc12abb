from .distill_loss_warmup_hook import DistillLossWarmupHook
from .distill_loss_rampup_hook import DistillLossRampUpHook
from .safe_checkpoint_hook import SafeCheckpointHook

__all__ = [
    'DistillLossWarmupHook', 'DistillLossRampUpHook', 'SafeCheckpointHook'
]
