"""SLURM behind the scheduler seam: srun steps (the facts come from `..slurm`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..env_vars import read_int
from ..errors import SlurmEnvironmentError
from . import Placement, Step

if TYPE_CHECKING:
    from ..slurm import SlurmEnvironment

#: Port slots reserved per array task for that task's steps.
STEPS_PER_ARRAY_TASK = 64

#: Explicit task counts, in the order they are believed (two that disagree are an error).
TASK_COUNT_VARS = ("SLURM_NTASKS", "SLURM_NPROCS", "SLURM_STEP_NUM_TASKS")
#: Variables whose presence means "some SLURM is around".
MARKERS = (
    "SLURM_JOB_ID",
    "SLURM_JOBID",
    "SLURM_PROCID",
    "SLURM_STEP_NODELIST",
    "SLURM_JOB_NODELIST",
    "SLURM_NODELIST",
    "SLURM_NTASKS",
    "SLURM_STEP_NUM_TASKS",
)


def task_count(env: Mapping[str, str]) -> int | None:
    """The first explicit task count (see TASK_COUNT_VARS); raises if it is not an integer."""
    for name in TASK_COUNT_VARS:
        value = read_int(env, name, SlurmEnvironmentError)
        if value is not None:
            return value
    return None


class Slurm:
    """Tasks of an ``srun`` step; see `phasic_distributed.slurm.SlurmEnvironment`."""

    name = "slurm"
    error = SlurmEnvironmentError
    variable_prefixes = ("SLURM_", "SLURMD_")

    def is_present(self, env: Mapping[str, str]) -> bool:
        return any(name in env for name in MARKERS)

    def step(self, env: Mapping[str, str]) -> Step | None:
        # The batch script also has SLURM_PROCID=0 and the job's task count but no
        # SLURM_STEP_NODELIST: a plain `python` there is one process and must not
        # wait for ranks that were never started.
        if "SLURM_STEP_NODELIST" not in env:
            return None
        rank = read_int(env, "SLURM_PROCID", SlurmEnvironmentError)
        size = task_count(env)
        if rank is None or size is None or size < 2:
            return None
        return Step(self.name, rank, size)

    def placement(self, env: Mapping[str, str]) -> Placement:
        from ..slurm import SlurmEnvironment

        s = SlurmEnvironment.from_env(env)
        key, slot = port_key(s)
        return Placement(
            scheduler=self.name,
            label=f"SLURM environment ({s.context})",
            active=s.context == "step",
            world_size=s.ntasks,
            rank=s.procid,
            local_rank=s.localid,
            local_size=s.local_tasks,
            coordinator_host=s.nodes[0] if s.nodes else None,
            port_key=key,
            port_slot=slot,
            cores=s.cpus_per_task,
            host=s.node_name,
            problems=s.problems,
        )


def port_key(s: SlurmEnvironment) -> tuple[str, int]:
    """(key, slot) of the coordinator port: the job (or array), and the step in it.

    Steps of one job, array tasks of one array and het-job components take
    consecutive slots, so concurrent steps never share a port.
    """
    if s.array_job_id is not None:
        key, task = f"array:{s.array_job_id}", s.array_task_id or 0
    else:
        key, task = f"job:{s.job_id or 0}", 0
    het = max(s.het_size or 1, 1)
    return key, (task * STEPS_PER_ARRAY_TASK + (s.step_id or 0)) * het + (s.het_offset or 0)
