"""Environment variables that carry the plan from the parent pytest to its ranks.

The launcher's own variables (coordinator, process count and id, devices) are
phasic_distributed's contract (`phasic_distributed.env_vars`); the testkit adds
the files and deadlines of its own protocol on top.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from phasic_distributed.env_vars import NUM_PROCESSES as NUM_PROCESSES  # read by the ranks
from phasic_distributed.env_vars import PROCESS_ID as PROCESS_ID
from phasic_distributed.env_vars import rank_environment as launcher_environment

# Set by the parent on every rank it spawns; their presence means "this process is a rank".
RESULT_FILE = "PHASIC_TESTKIT_RESULT"
STACK_FILE = "PHASIC_TESTKIT_STACK"
PARENT_PID = "PHASIC_TESTKIT_PARENT_PID"
TIMEOUT = "PHASIC_TESTKIT_TIMEOUT"
DEADLINE = "PHASIC_TESTKIT_DEADLINE"  # time.time() at which the parent stops the ranks

# Variables that must not leak from the parent into a rank: xdist worker identity
# and a forced device count (the launcher removes the schedulers' own variables).
_XDIST_VARS = ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID")
_DEVICE_FLAG = "--xla_force_host_platform_device_count"


def is_rank_process() -> bool:
    """True inside a rank that a parent pytest spawned."""
    return RESULT_FILE in os.environ


def scheduler_step():
    """The scheduler's `phasic_distributed.Step` (rank, size) when a scheduler started
    this process as one of several ranks (srun, mpirun), else None."""
    import phasic_distributed

    return phasic_distributed.scheduler_step()


def node_name() -> str | None:
    """The name of this node as the scheduler knows it (None if it does not say)."""
    from phasic_distributed.schedulers import present_scheduler

    scheduler = present_scheduler()
    return None if scheduler is None else scheduler.placement(os.environ).host


def rank_environment(
    base: Mapping[str, str],
    *,
    coordinator: str,
    nprocs: int,
    rank: int,
    devices: int,
    result_file: str,
    stack_file: str,
    timeout: float,
) -> dict[str, str]:
    """The environment of one spawned rank: the launcher's, plus the testkit's files."""
    env = launcher_environment(
        {k: v for k, v in base.items() if k not in _XDIST_VARS},
        coordinator=coordinator, nprocs=nprocs, rank=rank, devices=devices,
    )
    flags = [f for f in env.get("XLA_FLAGS", "").split() if not f.startswith(_DEVICE_FLAG)]
    if flags:
        env["XLA_FLAGS"] = " ".join(flags)
    else:
        env.pop("XLA_FLAGS", None)
    env.update(
        {
            RESULT_FILE: result_file,
            STACK_FILE: stack_file,
            PARENT_PID: str(os.getpid()),
            TIMEOUT: repr(float(timeout)),
            "JAX_PLATFORMS": "cpu",
            "PYTHONFAULTHANDLER": "1",
        }
    )
    return env
