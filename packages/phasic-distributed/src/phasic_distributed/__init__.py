"""phasic-distributed: a scheduler or launcher environment -> a correct jax.distributed setup.

Pure Python, and cheap to import: pydantic and jax load only when something that
needs them is used (attributes are resolved on first access). Typical use::

    import phasic_distributed
    phasic_distributed.initialize()   # before the first JAX computation

See ``phasic-distributed doctor`` for what it detects and what is wrong.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> submodule that defines it; imported on first attribute access (PEP 562).
_LAZY = {
    "CoordinatorError": "errors",
    "DistributedError": "errors",
    "InitializationError": "errors",
    "JaxCompatibilityError": "errors",
    "LauncherEnvironmentError": "errors",
    "MpiEnvironmentError": "errors",
    "SchedulerEnvironmentError": "errors",
    "SlurmEnvironmentError": "errors",
    "free_port": "coordinator",
    "get_coordinator_address": "coordinator",
    "listening_addresses": "coordinator",
    "compress_hostlist": "hostlist",
    "expand_hostlist": "hostlist",
    "current_plan": "jax_setup",
    "hard_exit": "jax_setup",
    "initialize": "jax_setup",
    "is_initialized": "jax_setup",
    "backend_started": "_jax_compat",
    "distributed_client": "_jax_compat",
    "distributed_process": "_jax_compat",
    "requested_devices": "cpus",
    "DistributedPlan": "planning",
    "plan": "planning",
    "Placement": "schedulers",
    "Scheduler": "schedulers",
    "Step": "schedulers",
    "scheduler_step": "schedulers",
    "Problem": "slurm",
    "SlurmEnvironment": "slurm",
    "detect_slurm_environment": "slurm",
    "parse_tasks_per_node": "slurm",
}

if TYPE_CHECKING:  # what the lazy names are, for type checkers and the API docs
    from ._jax_compat import backend_started, distributed_client, distributed_process
    from .coordinator import free_port, get_coordinator_address, listening_addresses
    from .cpus import requested_devices
    from .errors import (
        CoordinatorError,
        DistributedError,
        InitializationError,
        JaxCompatibilityError,
        LauncherEnvironmentError,
        MpiEnvironmentError,
        SchedulerEnvironmentError,
        SlurmEnvironmentError,
    )
    from .hostlist import compress_hostlist, expand_hostlist
    from .jax_setup import current_plan, hard_exit, initialize, is_initialized
    from .planning import DistributedPlan, plan
    from .schedulers import Placement, Scheduler, Step, scheduler_step
    from .slurm import Problem, SlurmEnvironment, detect_slurm_environment, parse_tasks_per_node

__all__ = [
    "CoordinatorError",
    "DistributedError",
    "DistributedPlan",
    "InitializationError",
    "JaxCompatibilityError",
    "LauncherEnvironmentError",
    "MpiEnvironmentError",
    "Placement",
    "Problem",
    "Scheduler",
    "SchedulerEnvironmentError",
    "SlurmEnvironment",
    "SlurmEnvironmentError",
    "Step",
    "backend_started",
    "compress_hostlist",
    "current_plan",
    "detect_slurm_environment",
    "distributed_client",
    "distributed_process",
    "expand_hostlist",
    "free_port",
    "get_coordinator_address",
    "hard_exit",
    "initialize",
    "is_initialized",
    "listening_addresses",
    "parse_tasks_per_node",
    "plan",
    "requested_devices",
    "scheduler_step",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'phasic_distributed' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
