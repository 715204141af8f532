"""Every PHASIC_* variable phasic reads, and the launcher's contract with its ranks.

A launcher (``phasic-launch``, phasic-testkit's parent process) starts each rank
with `rank_environment`: the four variables of `LAUNCHER_VARS` plus
``PHASIC_LOCAL_DEVICES``; `plan()` reads them back. A launcher that needs more
(phasic-testkit's result files) adds its own variables to what this returns.
"""

from __future__ import annotations

from collections.abc import Mapping

# The launcher's contract: set on every rank it starts.
COORDINATOR = "PHASIC_COORDINATOR"  # host:port of rank 0's coordinator
NUM_PROCESSES = "PHASIC_NUM_PROCESSES"
PROCESS_ID = "PHASIC_PROCESS_ID"
LOCAL_DEVICES = "PHASIC_LOCAL_DEVICES"  # CPU devices of this rank
#: All three present: this process is a launched rank (one alone is an error).
LAUNCHER_VARS = (COORDINATOR, NUM_PROCESSES, PROCESS_ID)

# Settings a user may give.
CPUS = "PHASIC_CPUS"
OLD_CPUS = "PTDALG_CPUS"  # the previous phasic's name
#: CPU devices per process, first present wins.
DEVICE_VARS = (LOCAL_DEVICES, CPUS, OLD_CPUS)
OMP_THREADS = "PHASIC_OMP_THREADS"
COORDINATOR_HOST = "PHASIC_COORDINATOR_HOST"
COORDINATOR_PORT = "PHASIC_COORDINATOR_PORT"
FAST_EXIT = "PHASIC_FAST_EXIT"


def rank_environment(
    base: Mapping[str, str], *, coordinator: str, nprocs: int, rank: int, devices: int
) -> dict[str, str]:
    """The environment of one launched rank: `base` plus the launcher's variables.

    Every registered scheduler's variables are removed: the rank's plan comes from
    the launcher alone, never from an enclosing srun step or mpirun.
    """
    from .schedulers import variable_prefixes

    prefixes = variable_prefixes()
    env = {k: v for k, v in base.items() if not k.startswith(prefixes)}
    env.update({
        COORDINATOR: coordinator,
        NUM_PROCESSES: str(nprocs),
        PROCESS_ID: str(rank),
        LOCAL_DEVICES: str(devices),
        "PYTHONUNBUFFERED": "1",  # a rank's lines arrive while it runs
    })
    return env


def read_int(env: Mapping[str, str], name: str, error: type[Exception]) -> int | None:
    """An integer variable, None when unset or empty; `error` naming it when malformed."""
    text = env.get(name, "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise error(f"{name}={text!r} is not an integer") from None
