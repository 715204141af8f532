"""phasic-distributed: SLURM or launcher environment -> a correct jax.distributed setup.

Pure Python; jax is imported only inside `initialize`. Typical use::

    import phasic_distributed
    phasic_distributed.initialize()   # before the first JAX computation

See ``phasic-distributed doctor`` for what it detects and what is wrong.
"""

from __future__ import annotations

from .coordinator import free_port, get_coordinator_address
from .errors import (
    CoordinatorError,
    DistributedError,
    InitializationError,
    LauncherEnvironmentError,
    SlurmEnvironmentError,
)
from .hostlist import compress_hostlist, expand_hostlist
from .initialize import backend_started, current_plan, hard_exit, initialize, is_initialized
from .plan import DistributedPlan, plan
from .slurm import Problem, SlurmEnvironment, detect_slurm_environment, parse_tasks_per_node

__version__ = "0.1.0"

__all__ = [
    "CoordinatorError",
    "DistributedError",
    "DistributedPlan",
    "InitializationError",
    "LauncherEnvironmentError",
    "Problem",
    "SlurmEnvironment",
    "SlurmEnvironmentError",
    "backend_started",
    "compress_hostlist",
    "current_plan",
    "detect_slurm_environment",
    "expand_hostlist",
    "free_port",
    "get_coordinator_address",
    "hard_exit",
    "initialize",
    "is_initialized",
    "parse_tasks_per_node",
    "plan",
]
