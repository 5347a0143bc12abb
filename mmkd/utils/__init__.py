from .checkpoint_globals import allow_mmengine_checkpoint_globals
from .setup_env import (enable_amp, exit_distributed, filter_known_warnings,
                        replace_sync_bn, setup_cpu_distributed,
                        setup_process)
from .teacher_config import resolve_teacher_configs

__all__ = [
    'allow_mmengine_checkpoint_globals', 'enable_amp', 'exit_distributed',
    'filter_known_warnings', 'replace_sync_bn', 'resolve_teacher_configs',
    'setup_cpu_distributed', 'setup_process'
]
