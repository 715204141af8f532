"""Parallel set-up: CPU device count, and multi-process start under a scheduler.

`import phasic` calls `auto_init()`: when a scheduler started this process as one
of several ranks (a multi-task `srun` step, `mpirun -n N`; see
`phasic_distributed.scheduler_step`) it initializes `jax.distributed` through
`phasic_distributed.initialize()`, unless PHASIC_AUTO_INIT=0. Otherwise it does
nothing; importing phasic_distributed for the check loads neither jax nor pydantic.

`import phasic` also turns on JAX's 64-bit mode (`enable_x64_default`), as upstream
phasic does; PHASIC_ENABLE_X64=0 opts out.

`init_parallel()` returns a `ParallelConfig` with the fields upstream phasic's has
(`device_count`, `local_device_count`, `strategy`, `env_info.env_type`, `devices`).
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

#: PHASIC_AUTO_INIT=0 turns the initialization on import off.
AUTO_INIT = "PHASIC_AUTO_INIT"
#: PHASIC_ENABLE_X64=0 keeps JAX in its default 32-bit mode on `import phasic`.
ENABLE_X64 = "PHASIC_ENABLE_X64"

_OFF = {"0", "false", "no", "off"}
_ON = {"1", "true", "yes", "on", ""}

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
    if env.get(AUTO_INIT, "1").strip().lower() in _OFF:
        return False
    return in_multi_process_step(env)


@dataclass
class EnvironmentInfo:
    """Where this process runs, with the fields of upstream phasic's `EnvironmentInfo`.

    env_type: 'slurm_multi' (a rank of a multi-task srun step), 'slurm_single' (one
    process inside a SLURM job), 'mpi_multi' (a rank under mpirun), 'launcher_multi'
    (a rank started by phasic-launch), else 'jupyter', 'ipython' or 'script'.
    """

    env_type: str = "script"
    is_interactive: bool = False
    available_cpus: int = 1
    slurm_info: dict[str, Any] | None = None
    jax_already_imported: bool = False


@dataclass
class ParallelConfig:
    """What `init_parallel` set up, with the fields of upstream phasic's `ParallelConfig`.

    device_count: JAX devices over all processes; local_device_count: this process's;
    strategy: 'pmap' when there are several devices, else 'vmap' (upstream's labels:
    our FFI functions and `phasic.svgd` shard over `devices` either way);
    plan: the `phasic_distributed.DistributedPlan` that was applied.
    """

    device_count: int = 1
    local_device_count: int = 1
    strategy: str = "vmap"
    env_info: EnvironmentInfo | None = None
    devices: list[Any] = field(default_factory=list)
    plan: Any = None


def _interactive_kind() -> str | None:
    """'jupyter' or 'ipython' when running under IPython, else None."""
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    if shell is None:
        return None
    return "jupyter" if type(shell).__name__ == "ZMQInteractiveShell" else "ipython"


def _env_type(plan: Any, slurm: Any) -> str:
    multi = {"slurm": "slurm_multi", "openmpi": "mpi_multi", "launcher": "launcher_multi"}
    if plan.is_distributed:
        return multi.get(plan.source, f"{plan.source}_multi")
    if slurm is not None and slurm.job_id is not None:
        return "slurm_single"
    return _interactive_kind() or "script"


def _partial_slurm_plan(pd: Any, slurm: Any, cpus: int | None) -> Any:
    """One process, with a warning that says what is missing, for a partial SLURM set.

    Upstream phasic runs such a process (say SLURM_PROCID and a node list exported by
    hand) as a plain script; `phasic_distributed.plan()` refuses it, since it cannot
    tell a rank from a lone process. Here we follow upstream, but say so.
    """
    problems = "; ".join(p.message for p in slurm.problems)
    warnings.warn(
        f"{problems}. phasic runs this as ONE process with no jax.distributed; if it "
        f"should be one rank of several, start it with `{slurm.srun_command()}`.",
        RuntimeWarning, stacklevel=3)
    return pd.plan(_without_slurm(os.environ), cpus=cpus)


def _without_slurm(env: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if not k.startswith(("SLURM_", "SLURMD_"))}


def init_parallel(cpus: int | None = None, *, plan: Any = None, **kwargs: Any) -> ParallelConfig:
    """Initialize (multi-process) JAX for this environment; return a `ParallelConfig`.

    `cpus`: CPU devices for this process (default: PHASIC_CPUS, else one per core);
    `plan`: a ready `phasic_distributed.DistributedPlan` instead of detection; other
    keywords (`timeout`, `heartbeat_timeout`) go to `phasic_distributed.initialize`.
    Idempotent. Under a multi-task srun step or mpirun it initializes
    jax.distributed; a partial SLURM environment (e.g. only SLURM_PROCID and a node
    list) runs as one process with a RuntimeWarning that names what is missing.
    """
    pd = _distributed()
    slurm = pd.detect_slurm_environment()
    jax_imported = "jax" in sys.modules
    if plan is None:
        if slurm is not None and slurm.context == "partial":
            plan = _partial_slurm_plan(pd, slurm, cpus)
        else:
            plan = pd.plan(cpus=cpus)
    elif cpus is not None:
        raise ValueError("pass either cpus or plan to init_parallel, not both")
    applied = pd.initialize(plan, **kwargs)
    import jax

    devices = list(jax.devices())
    info = EnvironmentInfo(
        env_type=_env_type(applied, slurm),
        is_interactive=_interactive_kind() is not None,
        available_cpus=applied.cores,
        slurm_info=None if slurm is None else slurm.model_dump(mode="json"),
        jax_already_imported=jax_imported,
    )
    return ParallelConfig(
        device_count=len(devices),
        local_device_count=jax.local_device_count(),
        strategy="pmap" if len(devices) > 1 else "vmap",
        env_info=info,
        devices=devices,
        plan=applied,
    )


def auto_init() -> None:
    """The `import phasic` hook: initialize as a scheduler's rank, else nothing."""
    if auto_init_enabled():
        _distributed().initialize()


def enable_x64_default(env: MutableMapping[str, str] | None = None) -> bool:
    """Turn on JAX's 64-bit mode, as `import phasic` does; return whether it did.

    Without importing jax: if jax is not imported yet, JAX_ENABLE_X64=1 is put into
    the environment (jax reads it when it loads); if it is, its config is updated.
    Nothing changes when PHASIC_ENABLE_X64 is 0/false/no/off, or when the user set
    JAX_ENABLE_X64 themselves (their choice wins).
    """
    env = os.environ if env is None else env
    choice = env.get(ENABLE_X64, "1").strip().lower()
    if choice in _OFF:
        return False
    if choice not in _ON:
        warnings.warn(f"{ENABLE_X64}={env[ENABLE_X64]!r} is not 0 or 1; turning 64-bit JAX "
                      f"on (set {ENABLE_X64}=0 to keep JAX's 32-bit default)",
                      RuntimeWarning, stacklevel=2)
    if "JAX_ENABLE_X64" in env:
        return False
    if "jax" in sys.modules:
        sys.modules["jax"].config.update("jax_enable_x64", True)
    else:
        env["JAX_ENABLE_X64"] = "1"
    return True


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
