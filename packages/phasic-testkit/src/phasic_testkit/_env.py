"""Environment variables that carry the plan from the parent pytest to its ranks."""

from __future__ import annotations

import os

# Set by the parent on every rank it spawns; their presence means "this process is a rank".
RESULT_FILE = "PHASIC_TESTKIT_RESULT"
STACK_FILE = "PHASIC_TESTKIT_STACK"
PARENT_PID = "PHASIC_TESTKIT_PARENT_PID"
TIMEOUT = "PHASIC_TESTKIT_TIMEOUT"
DEADLINE = "PHASIC_TESTKIT_DEADLINE"  # time.time() at which the parent stops the ranks

# The launcher variables that phasic_distributed.plan() reads.
COORDINATOR = "PHASIC_COORDINATOR"
NUM_PROCESSES = "PHASIC_NUM_PROCESSES"
PROCESS_ID = "PHASIC_PROCESS_ID"
LOCAL_DEVICES = "PHASIC_LOCAL_DEVICES"

# Variables that must not leak from the parent into a rank: xdist worker identity,
# an enclosing SLURM step (the rank's plan comes from us alone) and a forced device count.
_XDIST_VARS = ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID")
_DEVICE_FLAG = "--xla_force_host_platform_device_count"


def is_rank_process() -> bool:
    """True inside a rank that a parent pytest spawned."""
    return RESULT_FILE in os.environ


def slurm_step_size() -> tuple[int, int] | None:
    """(process id, number of tasks) when running as a task of a multi-task srun step.

    The batch script itself has no SLURM_STEP_NODELIST, so it does not count as a step.
    """
    env = os.environ
    if "SLURM_STEP_NODELIST" not in env or "SLURM_PROCID" not in env:
        return None
    try:
        ntasks = int(env.get("SLURM_NTASKS", env.get("SLURM_NPROCS", "1")))
        procid = int(env["SLURM_PROCID"])
    except ValueError as exc:
        raise RuntimeError(
            f"SLURM_NTASKS={env.get('SLURM_NTASKS')!r} / SLURM_PROCID={env['SLURM_PROCID']!r} "
            "are not integers; phasic-testkit cannot tell which rank this is"
        ) from exc
    return (procid, ntasks) if ntasks > 1 else None


def rank_environment(
    base: dict[str, str],
    *,
    coordinator: str,
    nprocs: int,
    rank: int,
    devices: int,
    result_file: str,
    stack_file: str,
    timeout: float,
) -> dict[str, str]:
    """The environment of one spawned rank, derived from the parent's."""
    env = {
        k: v
        for k, v in base.items()
        if not k.startswith("SLURM_") and k not in _XDIST_VARS
    }
    flags = [f for f in env.get("XLA_FLAGS", "").split() if not f.startswith(_DEVICE_FLAG)]
    if flags:
        env["XLA_FLAGS"] = " ".join(flags)
    else:
        env.pop("XLA_FLAGS", None)
    env.update(
        {
            COORDINATOR: coordinator,
            NUM_PROCESSES: str(nprocs),
            PROCESS_ID: str(rank),
            LOCAL_DEVICES: str(devices),
            RESULT_FILE: result_file,
            STACK_FILE: stack_file,
            PARENT_PID: str(os.getpid()),
            TIMEOUT: repr(float(timeout)),
            "JAX_PLATFORMS": "cpu",
            "PYTHONFAULTHANDLER": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env
