"""One exception hierarchy for phasic-distributed.

Every error is a ``DistributedError`` (a ``RuntimeError``), so callers can catch
one class; the subclasses say which part failed. Malformed hostlists raise
``ValueError`` (they are bad input, not a runtime state).
"""

from __future__ import annotations


class DistributedError(RuntimeError):
    """Base class: the distributed setup cannot proceed; the message says how to fix it."""


class SchedulerEnvironmentError(DistributedError):
    """A scheduler's variables (SLURM, Open MPI, ...) are missing, malformed or contradictory."""


class SlurmEnvironmentError(SchedulerEnvironmentError):
    """The SLURM variables are missing, malformed or contradict each other."""


class MpiEnvironmentError(SchedulerEnvironmentError):
    """The Open MPI (mpirun) variables are missing, malformed or contradict each other."""


class LauncherEnvironmentError(DistributedError):
    """The PHASIC_* launcher variables are incomplete or malformed."""


class CoordinatorError(DistributedError):
    """The coordinator cannot be resolved, reached or bound (host, port and rank named)."""


class InitializationError(DistributedError):
    """jax.distributed / JAX device setup cannot be done (e.g. too late, or already done)."""


class JaxCompatibilityError(InitializationError):
    """The installed jax lacks a private part phasic_distributed relies on (jax changed)."""
