from .distill_loss_warmup_hook import DistillLossWarmupHook
from .distill_loss_rampup_hook import DistillLossRampUpHook

__all__ = ['DistillLossWarmupHook', 'DistillLossRampUpHook']
