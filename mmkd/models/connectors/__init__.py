from .abf import ABF
from .review_connector import ReviewKDConnector
from .conv_connector import ConvConnector
from .bifpn import BiFPN
from .bifpnc import BiFPNc
from .bifpn_seg import BiFPNSeg
from .fgd_connector import FGDConnector
from .global_context_block import GlobalContextBlock
__all__ = [
    'ABF', 'ReviewKDConnector', 'ConvConnector', 'BiFPN', 'BiFPNc', 'BiFPNSeg',
    'FGDConnector', 'GlobalContextBlock'
]
