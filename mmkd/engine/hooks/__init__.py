from .distill_loss_warmup_hook import DistillLossWarmupHook

__all__ = ['DistillLossWarmupHook']
