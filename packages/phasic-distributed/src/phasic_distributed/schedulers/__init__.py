"""The scheduler seam: which job launcher started this process, and what it tells us.

A scheduler (SLURM's srun, Open MPI's mpirun, ...) is an object with the
`Scheduler` protocol. `plan()` asks the registered schedulers in order and uses
the first whose variables are present; phasic's ``import`` hook and
phasic-testkit ask `scheduler_step` "am I one rank of several?".

Adding a scheduler, e.g. PBS: write ``schedulers/pbs.py`` with a class that
implements `Scheduler`, and add the line ``"pbs:Pbs",`` to `_REGISTRY`.

The cheap parts (`Scheduler.is_present`, `Scheduler.step`) read a few variables
and import nothing; `Scheduler.placement` may import pydantic.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Protocol

from ..errors import SchedulerEnvironmentError

if TYPE_CHECKING:
    from ..slurm import Problem

# The registry, in the order schedulers are tried: "module:class" in this package.
# Open MPI comes first: mpirun inside a SLURM job starts its ranks through srun, so
# they also carry SLURM variables (of mpirun's daemons, not of the ranks).
_REGISTRY = (
    "openmpi:OpenMpi",
    "slurm:Slurm",
)


@dataclass(frozen=True)
class Step:
    """This process is rank `rank` of `size` (> 1) processes a scheduler started."""

    scheduler: str
    rank: int
    size: int


@dataclass(frozen=True)
class Placement:
    """Everything a scheduler says about this process, and what is wrong with it.

    `active` is False where the scheduler is around but did not start this process
    as one of its ranks (a SLURM batch script); such a process runs alone.
    `coordinator_host` is None when the ranks are not all known to be on one host
    and the scheduler cannot name rank 0's host. The coordinator port is derived
    from `port_key` and `port_slot` (the same on every rank of a job, different
    between concurrent jobs).
    """

    scheduler: str
    label: str  # for messages: "SLURM environment (batch)", "Open MPI environment"
    active: bool
    world_size: int | None
    rank: int | None
    local_rank: int | None
    local_size: int | None
    coordinator_host: str | None
    port_key: str
    port_slot: int = 0
    cores: int | None = None  # cores of this rank, when the scheduler says
    host: str | None = None  # this node's name, when the scheduler says
    problems: tuple[Problem, ...] = ()

    @property
    def errors(self) -> list[Problem]:
        """The problems that make a distributed setup impossible."""
        return [p for p in self.problems if p.severity == "error"]


class Scheduler(Protocol):
    """One kind of job launcher (see the module docstring for how to add one)."""

    #: Short name, used as the plan's ``source`` ("slurm", "openmpi").
    name: str
    #: Raised (with every error and its fix) when its environment cannot run a job.
    error: type[SchedulerEnvironmentError]
    #: Prefixes of its variables; a launcher removes them from the ranks it starts.
    variable_prefixes: tuple[str, ...]

    def is_present(self, env: Mapping[str, str]) -> bool:
        """Some of its variables are set (cheap; imports nothing)."""
        ...

    def step(self, env: Mapping[str, str]) -> Step | None:
        """Rank and size when it started this process as one of several (cheap).

        Raises `error` when the variables that say so are not integers.
        """
        ...

    def placement(self, env: Mapping[str, str]) -> Placement:
        """All it knows, with every problem and its fix; never raises."""
        ...


@cache
def registered() -> tuple[Scheduler, ...]:
    """The registered schedulers, in the order they are tried."""
    out = []
    for entry in _REGISTRY:
        module, cls = entry.split(":")
        out.append(getattr(importlib.import_module(f".{module}", __name__), cls)())
    return tuple(out)


def present_scheduler(env: Mapping[str, str] | None = None) -> Scheduler | None:
    """The first registered scheduler whose variables are set, or None."""
    env = os.environ if env is None else env
    return next((s for s in registered() if s.is_present(env)), None)


def scheduler_step(env: Mapping[str, str] | None = None) -> Step | None:
    """Rank and size when a scheduler started this process as one of several, else None."""
    env = os.environ if env is None else env
    s = present_scheduler(env)
    return None if s is None else s.step(env)


def variable_prefixes() -> tuple[str, ...]:
    """The variable prefixes of every registered scheduler."""
    return tuple(p for s in registered() for p in s.variable_prefixes)


def format_problems(title: str, problems: list[Problem]) -> str:
    """`title`, then one line per problem with its fix."""
    lines = [title]
    for p in problems:
        lines.append(f"  - {p.message}" + (f"\n    fix: {p.fix}" if p.fix else ""))
    return "\n".join(lines)
