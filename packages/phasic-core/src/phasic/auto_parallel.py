"""Parallel set-up: CPU device count, and multi-process start under a scheduler.

`import phasic` calls `auto_init()`: when a scheduler started this process as one
of several ranks (a multi-task `srun` step, `mpirun -n N`; see
`phasic_distributed.scheduler_step`) it initializes `jax.distributed` through
`phasic_distributed.initialize()`, unless PHASIC_AUTO_INIT=0. Otherwise it does
nothing; importing phasic_distributed for the check loads neither jax nor pydantic.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

#: PHASIC_AUTO_INIT=0 turns the initialization on import off.
AUTO_INIT = "PHASIC_AUTO_INIT"

_DISTRIBUTED_MISSING = (
    "phasic needs the package `phasic_distributed` for multi-process runs, but it "
    "cannot be imported ({error}). Install it (`pip install packages/phasic-distributed`), "
    "or set PHASIC_AUTO_INIT=0 to skip the automatic initialization."
)


def _distributed() -> Any:
    try:
        import phasic_distributed
    except ImportError as exc:
        raise ImportError(_DISTRIBUTED_MISSING.format(error=exc)) from exc
    if not hasattr(phasic_distributed, "scheduler_step"):
        raise ImportError(_DISTRIBUTED_MISSING.format(
            error="it has no `scheduler_step`; it may be an older or incomplete version"))
    return phasic_distributed


def in_multi_process_step(env: Mapping[str, str] | None = None) -> bool:
    """True when a scheduler (srun, mpirun) started this process as one of several ranks.

    The batch script of a SLURM job also has SLURM_PROCID=0 and the job's task
    count, but it is one process and must not wait for ranks that were never started.
    """
    return _distributed().scheduler_step(env) is not None


def auto_init_enabled(env: Mapping[str, str] | None = None) -> bool:
    """Whether `import phasic` should initialize jax.distributed (a scheduler's rank,
    PHASIC_AUTO_INIT not 0)."""
    env = os.environ if env is None else env
    # read before phasic_distributed is imported: the way out must work even when
    # that import fails
    if env.get(AUTO_INIT, "1").strip().lower() in {"0", "false", "no", "off"}:
        return False
    return in_multi_process_step(env)


def init_parallel(plan: Any = None, **kwargs: Any) -> Any:
    """Initialize multi-process JAX through `phasic_distributed.initialize(plan, **kwargs)`.

    Idempotent (phasic_distributed makes repeated calls a no-op). Returns whatever
    `initialize` returns.
    """
    return _distributed().initialize(plan, **kwargs)


def auto_init() -> None:
    """The `import phasic` hook: initialize as a scheduler's rank, else nothing."""
    if auto_init_enabled():
        init_parallel()


def set_cpu_devices(n: int) -> None:
    """Make JAX expose `n` CPU devices. Call it before the first JAX computation."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the number of CPU devices must be an int >= 1, got {n!r}")
    import jax

    if _distributed().backend_started():
        current = len(jax.devices("cpu"))
        if current == n:
            return
        raise RuntimeError(_too_late(n, current))
    try:
        jax.config.update("jax_num_cpu_devices", n)
    except RuntimeError as exc:
        raise RuntimeError(_too_late(n, None)) from exc


def _too_late(n: int, current: int | None) -> str:
    have = f" (it has {current})" if current is not None else ""
    return (
        f"cannot set {n} CPU devices: the JAX backend has already started{have}. "
        "Call phasic.set_cpu_devices(n) (or set PHASIC_CPUS=n for the test suites) "
        "before the first JAX computation, i.e. before any jax.devices() call or array "
        "operation; importing jax earlier is fine."
    )


def cpu_devices_from_env(env: Mapping[str, str] | None = None) -> int | None:
    """The CPU device count asked for by PHASIC_LOCAL_DEVICES, PHASIC_CPUS or PTDALG_CPUS.

    None when none is set; a `phasic_distributed.DistributedError` (a RuntimeError)
    naming the variable when it is not a positive integer.
    """
    return _distributed().requested_devices(env)
