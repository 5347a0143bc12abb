from .ground_truth import (GROUND_TRUTH_KEYS, get_ground_truth,
                           probe_ground_truth)
from .relation_kl import relation_kl_sum, self_relation_kl_sum
from .task_model import (build_task_model, build_teacher, freeze,
                         load_model_config, load_teacher_state_dict)

__all__ = [
    'GROUND_TRUTH_KEYS', 'get_ground_truth', 'build_task_model',
    'build_teacher', 'freeze', 'load_model_config', 'load_teacher_state_dict',
    'probe_ground_truth', 'relation_kl_sum', 'self_relation_kl_sum'
]
