from .abf import ABF
from .bifpn import BiFPN
from .bifpn_seg import BiFPNSeg
from .bifpnc import BiFPNc
from .cirkd_memory import CIRKDMemory
from .conv_connector import ConvConnector
from .fgd_connector import FGDConnector
from .global_context_block import GlobalContextBlock
from .mgd_connector import MGDConnector
from .review_connector import ReviewKDConnector

__all__ = [
    'ABF', 'ReviewKDConnector', 'ConvConnector', 'BiFPN', 'BiFPNc', 'BiFPNSeg',
    'CIRKDMemory', 'MGDConnector', 'FGDConnector', 'GlobalContextBlock'
]
