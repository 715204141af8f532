"""`DistributedPlan`: who am I, who coordinates, how many CPU devices and threads.

`plan()` looks, in this order, at

1. the launcher's variables (``phasic-launch`` or phasic-testkit set them):
   ``PHASIC_COORDINATOR`` (host:port), ``PHASIC_NUM_PROCESSES``,
   ``PHASIC_PROCESS_ID``, ``PHASIC_LOCAL_DEVICES`` -> source ``"launcher"``;
2. the registered schedulers, in order (`phasic_distributed.schedulers`): Open
   MPI's mpirun -> ``"openmpi"``, SLURM (an srun step, or a single-task
   allocation) -> ``"slurm"``;
3. nothing: one process -> source ``"single"``.

CPU devices per process: the ``cpus`` argument, else ``PHASIC_LOCAL_DEVICES``,
``PHASIC_CPUS``, ``PTDALG_CPUS`` (the previous phasic's name), else one device per
core available to the process. Cores per process: ``SLURM_CPUS_PER_TASK``, else
the CPUs this process may run on divided by the processes sharing the node.
OpenMP threads per device: cores // devices (at least 1); ``PHASIC_OMP_THREADS``
overrides.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, model_validator

from .coordinator import format_address, parse_address, placement_address
from .cpus import available_cpus, positive_int, requested_devices
from .env_vars import (
    COORDINATOR,
    LAUNCHER_VARS,
    NUM_PROCESSES,
    OMP_THREADS,
    PROCESS_ID,
    read_int,
)
from .errors import DistributedError, LauncherEnvironmentError
from .schedulers import Scheduler, format_problems, present_scheduler

#: "launcher", "single", or a registered scheduler's name ("slurm", "openmpi").
Source = str


class DistributedPlan(BaseModel):
    """Everything `initialize` needs; identical fields on every rank except process_id."""

    model_config = ConfigDict(frozen=True)

    coordinator_address: str | None
    num_processes: int
    process_id: int
    local_device_count: int
    omp_threads_per_device: int
    source: Source
    cores: int = 1

    @model_validator(mode="after")
    def _consistent(self) -> DistributedPlan:
        if self.num_processes < 1:
            raise ValueError(f"num_processes={self.num_processes} must be at least 1")
        if not 0 <= self.process_id < self.num_processes:
            raise ValueError(
                f"process_id={self.process_id} must be in 0..{self.num_processes - 1}"
            )
        if self.local_device_count < 1 or self.omp_threads_per_device < 1:
            raise ValueError("local_device_count and omp_threads_per_device must be >= 1")
        if self.num_processes > 1 and not self.coordinator_address:
            raise ValueError(
                f"{self.num_processes} processes need a coordinator_address (host:port)"
            )
        if self.coordinator_address:
            parse_address(self.coordinator_address)
        return self

    @property
    def is_distributed(self) -> bool:
        """True when jax.distributed must be initialized (more than one process)."""
        return self.num_processes > 1


def _devices_and_threads(
    env: Mapping[str, str], cpus: int | None, cores: int
) -> tuple[int, int]:
    if cpus is not None:
        if isinstance(cpus, bool) or not isinstance(cpus, int) or cpus < 1:
            raise DistributedError(f"cpus={cpus!r} must be a positive integer")
        devices = cpus
    else:
        devices = requested_devices(env) or cores
    threads = positive_int(env, OMP_THREADS)
    return devices, threads or max(1, cores // devices)


def _launcher_plan(env: Mapping[str, str], cpus: int | None) -> DistributedPlan:
    missing = [n for n in LAUNCHER_VARS if not env.get(n)]
    if missing:
        present = [n for n in LAUNCHER_VARS if env.get(n)]
        raise LauncherEnvironmentError(
            f"launcher variables incomplete: {', '.join(present)} set but "
            f"{', '.join(missing)} missing; set all of {', '.join(LAUNCHER_VARS)} "
            "(phasic-launch does) or none"
        )
    num = positive_int(env, NUM_PROCESSES, LauncherEnvironmentError)
    pid = read_int(env, PROCESS_ID, LauncherEnvironmentError)
    assert num is not None and pid is not None  # both checked present above
    if not 0 <= pid < num:
        raise LauncherEnvironmentError(
            f"{PROCESS_ID}={pid} is outside 0..{num - 1} ({NUM_PROCESSES}={num})"
        )
    host, port = parse_address(env[COORDINATOR])
    # Launched processes share this machine; split its cores among them.
    cores = max(1, available_cpus() // num)
    devices, threads = _devices_and_threads(env, cpus, cores)
    return DistributedPlan(
        coordinator_address=format_address(host, port),
        num_processes=num,
        process_id=pid,
        local_device_count=devices,
        omp_threads_per_device=threads,
        source="launcher",
        cores=cores,
    )


def _scheduler_plan(
    scheduler: Scheduler, env: Mapping[str, str], cpus: int | None
) -> DistributedPlan:
    at = scheduler.placement(env)
    if at.errors:
        raise scheduler.error(format_problems(
            f"{at.label} cannot run a distributed job:", at.errors))
    cores = at.cores or max(1, available_cpus() // (at.local_size or 1))
    devices, threads = _devices_and_threads(env, cpus, cores)
    distributed = at.active and (at.world_size or 1) > 1
    return DistributedPlan(
        coordinator_address=placement_address(at, env) if distributed else None,
        num_processes=at.world_size if distributed and at.world_size else 1,
        process_id=at.rank if distributed and at.rank is not None else 0,
        local_device_count=devices,
        omp_threads_per_device=threads,
        source=scheduler.name,
        cores=cores,
    )


def plan(env: Mapping[str, str] | None = None, cpus: int | None = None) -> DistributedPlan:
    """Build the plan for this process from `env` (default ``os.environ``).

    `cpus` is the number of CPU devices for this process (overrides the
    environment). Raises a `DistributedError` subclass, with the fix, when the
    environment is incomplete or contradictory; never falls back to localhost for
    a job with several tasks or nodes.
    """
    env = os.environ if env is None else env
    if any(env.get(n) for n in LAUNCHER_VARS):
        return _launcher_plan(env, cpus)
    scheduler = present_scheduler(env)
    if scheduler is not None:
        return _scheduler_plan(scheduler, env, cpus)
    cores = available_cpus()
    devices, threads = _devices_and_threads(env, cpus, cores)
    return DistributedPlan(
        coordinator_address=None,
        num_processes=1,
        process_id=0,
        local_device_count=devices,
        omp_threads_per_device=threads,
        source="single",
        cores=cores,
    )
