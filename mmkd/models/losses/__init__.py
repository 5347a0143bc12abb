from .hcl_loss import HCLLoss
from .fitnet_loss import FitNetLoss
from .gt_cross_entropy_loss import GTCrossEntropyLoss
from .at_loss import ATLoss
from .dkd_loss import DKDLoss
from .kd_loss import KDLoss
from .pair_wise_loss import PairWiseLoss
from .pixel_wise_loss import PixelWiseLoss
from .fgd_loss import FGDLoss
from .wgan_gp_loss import (HolisticCriticLoss, HolisticGeneratorLoss,
                           gradient_penalty)
__all__ = ['HCLLoss', 'FitNetLoss', 'GTCrossEntropyLoss', 'ATLoss', 'DKDLoss',
           'KDLoss', 'PairWiseLoss', 'PixelWiseLoss', 'HolisticCriticLoss',
           'HolisticGeneratorLoss', 'gradient_penalty', 'FGDLoss']
