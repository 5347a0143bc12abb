from .distiller import Distiller
from .feature_tap import FeatureTap, StopForward, TapError, TapRecorder

__all__ = ['Distiller', 'FeatureTap', 'StopForward', 'TapError',
    'TapRecorder']
