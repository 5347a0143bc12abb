from .adversarial_distiller import AdversarialDistiller
from .distill_graph import DistillGraph
from .distiller import Distiller
from .distributed import DistillerDistributedDataParallel
from .feature_tap import FeatureTap, StopForward, TapError, TapRecorder
from .nonfinite_guard import NonFiniteGuard, NonFiniteLossError

__all__ = [
    'AdversarialDistiller', 'DistillGraph', 'Distiller',
    'DistillerDistributedDataParallel', 'FeatureTap', 'NonFiniteGuard',
    'NonFiniteLossError', 'StopForward', 'TapError', 'TapRecorder'
]
