from .hcl_loss import HCLLoss
from .fitnet_loss import FitNetLoss
from .gt_cross_entropy_loss import GTCrossEntropyLoss
from .at_loss import ATLoss
from .cirkd_memory_loss import CIRKDMemoryLoss
from .cirkd_minibatch_loss import CIRKDMiniBatchLoss
from .cwd_loss import CWDLoss
from .dist_loss import DISTLoss
from .dkd_loss import DKDLoss
from .fgd_loss import FGDLoss
from .kd_loss import KDLoss
from .mgd_loss import MGDLoss
from .pair_wise_loss import PairWiseLoss
from .pkd_loss import PKDLoss
from .pixel_wise_loss import PixelWiseLoss
from .wgan_gp_loss import (HolisticCriticLoss, HolisticGeneratorLoss,
                           gradient_penalty)

__all__ = [
    'HCLLoss', 'FitNetLoss', 'GTCrossEntropyLoss', 'ATLoss', 'DKDLoss',
    'KDLoss', 'PairWiseLoss', 'PixelWiseLoss', 'HolisticCriticLoss',
    'HolisticGeneratorLoss', 'gradient_penalty', 'CIRKDMemoryLoss',
    'CIRKDMiniBatchLoss', 'MGDLoss', 'CWDLoss', 'DISTLoss', 'PKDLoss',
    'FGDLoss'
]
