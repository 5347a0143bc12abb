from .distiller import Distiller
from .feature_tap import FeatureTap, StopForward, TapRecorder

__all__ = ['Distiller', 'FeatureTap', 'StopForward', 'TapRecorder']
