from .checkpoint_globals import allow_mmengine_checkpoint_globals
from .setup_env import (exit_distributed, filter_known_warnings,
                        replace_sync_bn, setup_cpu_distributed, setup_process)

__all__ = [
    'allow_mmengine_checkpoint_globals', 'exit_distributed',
    'filter_known_warnings',
    'replace_sync_bn', 'setup_cpu_distributed', 'setup_process'
]
