from .adversarial_distiller import AdversarialDistiller
from .distiller import Distiller
from .feature_tap import FeatureTap, StopForward, TapError, TapRecorder

__all__ = ['AdversarialDistiller', 'Distiller', 'FeatureTap', 'StopForward',
           'TapError', 'TapRecorder']
