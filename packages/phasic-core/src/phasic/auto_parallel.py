"""Parallel set-up: CPU device count, and multi-process start under SLURM.

`import phasic` calls `auto_init()`: inside a multi-task `srun` step (SLURM_PROCID,
SLURM_NTASKS > 1 and SLURM_STEP_NODELIST set) it initializes `jax.distributed` through
`phasic_distributed.initialize()`, unless PHASIC_AUTO_INIT=0. Outside SLURM it does
nothing and imports nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

_DISTRIBUTED_MISSING = (
    "phasic needs the package `phasic_distributed` for multi-process runs, but it "
    "cannot be imported ({error}). Install it (`pip install packages/phasic-distributed`), "
    "or set PHASIC_AUTO_INIT=0 to skip the automatic initialization under srun."
)


def in_multi_task_slurm_step(env: Mapping[str, str] | None = None) -> bool:
    """True inside an srun step with more than one task.

    The batch script itself also has SLURM_PROCID=0 and the job's SLURM_NTASKS, but no
    SLURM_STEP_NODELIST: a plain `python` there is one process and must not wait for
    ranks that were never started.
    """
    env = os.environ if env is None else env
    if not all(k in env for k in ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_STEP_NODELIST")):
        return False
    try:
        return int(env["SLURM_NTASKS"]) > 1
    except ValueError:
        raise RuntimeError(
            f"SLURM_NTASKS={env['SLURM_NTASKS']!r} is not an integer; phasic cannot tell "
            "how many processes this SLURM step has (set PHASIC_AUTO_INIT=0 to skip)"
        ) from None


def auto_init_enabled(env: Mapping[str, str] | None = None) -> bool:
    """Whether `import phasic` should initialize jax.distributed (srun, PHASIC_AUTO_INIT != 0)."""
    env = os.environ if env is None else env
    if env.get("PHASIC_AUTO_INIT", "1").strip().lower() in {"0", "false", "no", "off"}:
        return False
    return in_multi_task_slurm_step(env)


def _distributed() -> Any:
    try:
        import phasic_distributed
    except ImportError as exc:
        raise ImportError(_DISTRIBUTED_MISSING.format(error=exc)) from exc
    if not hasattr(phasic_distributed, "initialize"):
        raise ImportError(_DISTRIBUTED_MISSING.format(
            error="it has no `initialize`; it may be an older or incomplete version"))
    return phasic_distributed


def init_parallel(plan: Any = None, **kwargs: Any) -> Any:
    """Initialize multi-process JAX through `phasic_distributed.initialize(plan, **kwargs)`.

    Idempotent (phasic_distributed makes repeated calls a no-op). Returns whatever
    `initialize` returns.
    """
    return _distributed().initialize(plan, **kwargs)


def auto_init() -> None:
    """The `import phasic` hook: initialize under a multi-task srun step, else nothing."""
    if auto_init_enabled():
        init_parallel()


def _backend_started() -> bool:
    try:
        from jax._src import xla_bridge
        return bool(xla_bridge.backends_are_initialized())
    except (ImportError, AttributeError):  # private API moved: fall back to JAX's own error
        return False


def set_cpu_devices(n: int) -> None:
    """Make JAX expose `n` CPU devices. Call it before the first JAX computation."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the number of CPU devices must be an int >= 1, got {n!r}")
    import jax

    if _backend_started():
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
    """The CPU device count requested by PHASIC_CPUS (or the older PTDALG_CPUS), if any."""
    env = os.environ if env is None else env
    for name in ("PHASIC_CPUS", "PTDALG_CPUS"):
        value = env.get(name)
        if value:
            try:
                n = int(value)
            except ValueError:
                raise ValueError(f"{name}={value!r} must be a positive integer") from None
            if n < 1:
                raise ValueError(f"{name}={value!r} must be a positive integer")
            return n
    return None
