from .abf import ABF
from .review_connector import ReviewKDConnector
from .conv_connector import ConvConnector
from .bifpn import BiFPN
from .bifpnc import BiFPNc
from .bifpn_seg import BiFPNSeg
from .cirkd_memory import CIRKDMemory
__all__ = [
    'ABF', 'ReviewKDConnector', 'ConvConnector', 'BiFPN', 'BiFPNc', 'BiFPNSeg',
    'CIRKDMemory'
]
