from .cifar_resnet import CIFARResNet
from .shufflenet_cifar import CIFARShuffleNetV1, CIFARShuffleNetV2
from .wide_resnet import WideResNet

__all__ = [
    'CIFARResNet', 'CIFARShuffleNetV1', 'CIFARShuffleNetV2', 'WideResNet'
]
