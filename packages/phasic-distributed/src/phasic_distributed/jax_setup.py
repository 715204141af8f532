"""`initialize()`: CPU devices, OpenMP threads and jax.distributed, in the right order.

JAX fixes the CPU device count when its backend starts (the first ``jax.devices()``
or array operation), not when it is imported. So the rule is "initialize before
the first JAX computation"; importing jax earlier is fine. If a computation has
already run, we raise with the fix instead of silently running on 1 device.
"""

from __future__ import annotations

import atexit
import inspect
import math
import os
import sys
import threading
import time
from typing import Any

from ._jax_compat import backend_started, distributed_client
from .coordinator import (
    bind_address,
    check_port_free,
    parse_address,
    resolve,
    wait_for_coordinator,
)
from .env_vars import FAST_EXIT
from .errors import InitializationError
from .planning import DistributedPlan
from .planning import plan as make_plan

_lock = threading.Lock()
_current: DistributedPlan | None = None
_requested_exit: object = None
_fail_fast_installed = False


def is_initialized() -> bool:
    """True once `initialize` has completed in this process."""
    return _current is not None


def current_plan() -> DistributedPlan | None:
    """The plan `initialize` applied, or None."""
    return _current


def _import_jax() -> Any:
    try:
        import jax
    except ImportError as exc:
        raise InitializationError(
            "jax is not installed; install it with: pip install 'phasic-distributed[jax]'"
        ) from exc
    return jax


def _set_device_count(jax: Any, n: int) -> None:
    try:
        jax.config.update("jax_num_cpu_devices", n)
    except AttributeError:  # jax without the option: the XLA flag does the same
        flags = os.environ.get("XLA_FLAGS", "").split()
        flags = [f for f in flags if not f.startswith("--xla_force_host_platform_device_count")]
        os.environ["XLA_FLAGS"] = " ".join(flags + [f"--xla_force_host_platform_device_count={n}"])


def _too_late(p: DistributedPlan, jax: Any) -> InitializationError:
    try:
        have = len(jax.local_devices())
    except Exception:  # noqa: BLE001 - only used for the message
        have = "?"
    return InitializationError(
        f"a JAX computation already ran in this process (the CPU backend has {have} "
        f"device(s)), so the device count ({p.local_device_count}) and "
        f"jax.distributed ({p.num_processes} processes) can no longer be set. "
        "Fix: call phasic_distributed.initialize() (or import phasic) before the first "
        "JAX computation (jax.devices(), jnp.array(...), ...). Importing jax first is fine."
    )


def _log(p: DistributedPlan, message: str) -> None:
    # One line on stderr before blocking calls: if JAX aborts the process, the
    # log still says which rank was waiting for which coordinator.
    print(f"[phasic_distributed rank {p.process_id}/{p.num_processes}] {message}",
          file=sys.stderr, flush=True)


def initialize(
    plan: DistributedPlan | None = None,
    *,
    timeout: float = 60.0,
    heartbeat_timeout: int | None = None,
) -> DistributedPlan:
    """Apply `plan` (default: `plan()` from the environment) to JAX; return it.

    Sets ``jax_num_cpu_devices`` and ``OMP_NUM_THREADS`` (cores per device), then,
    for several processes, checks that the coordinator host resolves (all ranks),
    that its port is free (rank 0) or reachable (other ranks, polled until
    `timeout`), and calls ``jax.distributed.initialize`` with explicit arguments.
    Idempotent: a second call with the same plan returns it; a different plan
    raises `InitializationError`. Every coordinator error names host, port and rank.

    `heartbeat_timeout` (whole seconds, default JAX's 100) is how long the
    coordinator waits for a silent rank (a dead node, a cut link) before it fails
    the job naming that rank; lower it to fail faster, at the cost of declaring a
    rank dead that is only paused that long.
    """
    global _current
    if not (isinstance(timeout, int | float) and timeout > 0 and math.isfinite(timeout)):
        raise InitializationError(f"timeout={timeout!r} must be a positive number of seconds")
    if heartbeat_timeout is not None and not (
        isinstance(heartbeat_timeout, int) and not isinstance(heartbeat_timeout, bool)
        and heartbeat_timeout > 0
    ):
        raise InitializationError(
            f"heartbeat_timeout={heartbeat_timeout!r} must be a positive whole number of "
            "seconds (or None for JAX's default of 100)"
        )
    with _lock:
        p = make_plan() if plan is None else plan
        if _current is not None:
            if _current == p:
                return _current
            raise InitializationError(
                f"already initialized with {_current.model_dump()}; cannot switch to "
                f"{p.model_dump()} in the same process (start a new process)"
            )
        jax = _import_jax()
        if backend_started():
            same = (not p.is_distributed and not (distributed_client() is not None)
                    and len(jax.local_devices()) == p.local_device_count)
            if not same:
                raise _too_late(p, jax)
        os.environ["OMP_NUM_THREADS"] = str(p.omp_threads_per_device)
        if not backend_started():
            _set_device_count(jax, p.local_device_count)
        if p.is_distributed:
            _connect(jax, p, timeout, heartbeat_timeout)
        _current = p
        return p


def hard_exit(code: int) -> None:
    """Flush stdout/stderr and end the process now, skipping JAX's shutdown barrier.

    After ``jax.distributed.initialize``, a normal interpreter exit waits in JAX's
    shutdown barrier for every other rank (up to 5 minutes). A failing rank must
    not wait for ranks that are blocked in a collective with it: it should leave
    at once so that srun or phasic-launch sees the failure and stops the others.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed stream must not stop the exit
            pass
    os._exit(code)


def _exit_code(status: object) -> int:
    if status is None:
        return 0
    return status if isinstance(status, int) else 1


def _install_fail_fast() -> None:
    """Make a failing rank exit at once (see `hard_exit`); PHASIC_FAST_EXIT=0 disables.

    Covers uncaught exceptions (sys.excepthook) and ``sys.exit(n)`` with n != 0.
    A bare ``raise SystemExit(n)`` cannot be seen and still waits in the barrier.
    """
    global _fail_fast_installed
    if _fail_fast_installed or os.environ.get(FAST_EXIT, "1") == "0":
        return
    _fail_fast_installed = True
    original_exit, original_hook = sys.exit, sys.excepthook

    def exit(status: object = None) -> None:
        global _requested_exit
        _requested_exit = status
        original_exit(status)

    def excepthook(kind, value, tb) -> None:
        original_hook(kind, value, tb)
        hard_exit(130 if issubclass(kind, KeyboardInterrupt) else 1)

    def at_exit() -> None:
        # Registered after jax's own atexit shutdown, so it runs before it.
        code = _exit_code(_requested_exit)
        if code:
            hard_exit(code)

    sys.exit = exit
    sys.excepthook = excepthook
    atexit.register(at_exit)


def _connect(jax: Any, p: DistributedPlan, timeout: float,
             heartbeat_timeout: int | None = None) -> None:
    assert p.coordinator_address is not None
    host, port = parse_address(p.coordinator_address)
    rank = p.process_id
    if (distributed_client() is not None):
        raise InitializationError(
            f"rank {rank}: jax.distributed was already initialized by someone else; "
            "let phasic_distributed.initialize() do it (or skip it)"
        )
    start = time.monotonic()
    _log(p, f"connecting to coordinator {p.coordinator_address} (timeout {timeout:.0f} s; "
            "if it expires JAX aborts this process)")
    bind = None
    if rank == 0:
        bind = bind_address(host, port, resolve(host, port, rank, timeout))
        check_port_free(port, rank)
        _log(p, f"coordinator listens on {bind}")
    else:
        wait_for_coordinator(host, port, rank, timeout)
    remaining = max(1, math.ceil(timeout - (time.monotonic() - start)))
    kwargs: dict[str, Any] = dict(
        coordinator_address=p.coordinator_address,
        num_processes=p.num_processes,
        process_id=p.process_id,
        local_device_ids=None,
        initialization_timeout=remaining,
    )
    accepted = inspect.signature(jax.distributed.initialize).parameters
    # Without this, JAX's own cluster detection fills in local_device_ids from SLURM.
    if "cluster_detection_method" in accepted:
        kwargs["cluster_detection_method"] = "deactivate"
    # JAX's default is every interface ([::]:port): anyone who can reach this
    # machine could join the job as a rank.
    if bind is not None and "coordinator_bind_address" in accepted:
        kwargs["coordinator_bind_address"] = bind
    if heartbeat_timeout is not None:
        kwargs["heartbeat_timeout_seconds"] = heartbeat_timeout
    try:
        jax.distributed.initialize(**kwargs)
    except Exception as exc:
        raise InitializationError(
            f"rank {rank}: jax.distributed.initialize with coordinator {host}:{port} "
            f"({p.num_processes} processes) failed: {exc}"
        ) from exc
    _install_fail_fast()
