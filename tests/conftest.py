"""Set-up for the cross-package suites: float64 and the CPU device count, then a summary.

The device count must be fixed before the first JAX computation, so it is done
here, at collection, before any test runs: PHASIC_CPUS (or the older PTDALG_CPUS)
devices, 8 by default. On a rank a scheduler started (a multi-task srun step,
mpirun) `import phasic` has already initialized jax.distributed (and the device
count) through phasic_distributed, so nothing is changed there. If JAX started too early, the error is kept and reported
by the device-count test instead of breaking collection.
"""

from __future__ import annotations

import time

import jax
import pytest

import phasic
import phasic_distributed
from phasic.auto_parallel import cpu_devices_from_env, in_multi_process_step

jax.config.update("jax_enable_x64", True)

DEFAULT_CPUS = 8
REQUESTED_CPUS: int | None = None
DEVICE_SETUP_ERROR: str | None = None
_START = time.monotonic()

if not in_multi_process_step():
    REQUESTED_CPUS = cpu_devices_from_env() or DEFAULT_CPUS
    try:
        phasic.set_cpu_devices(REQUESTED_CPUS)
    except RuntimeError as exc:
        DEVICE_SETUP_ERROR = str(exc)


@pytest.fixture(scope="session")
def device_setup() -> tuple[int | None, str | None]:
    """(CPU devices requested at collection, the error if setting them failed)."""
    return REQUESTED_CPUS, DEVICE_SETUP_ERROR


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ARG001
    """A short table: devices, processes, tests and wall time of this run."""
    stats = terminalreporter.stats
    counts = {k: len(stats.get(k, [])) for k in ("passed", "failed", "error", "skipped")}
    # the backend may never have started if every test was deselected
    if phasic_distributed.backend_started():
        devices = f"{jax.local_device_count()} local / {jax.device_count()} global"
        processes = f"{jax.process_count()} (this is process {jax.process_index()})"
    else:
        devices = processes = "JAX backend not started"
    rows = [
        ("devices", devices),
        ("requested CPU devices", str(REQUESTED_CPUS) if REQUESTED_CPUS else "set by the scheduler"),
        ("processes", processes),
        ("tests", ", ".join(f"{v} {k}" for k, v in counts.items())),
        ("time", f"{time.monotonic() - _START:.1f} s"),
    ]
    width = max(len(k) for k, _ in rows)
    terminalreporter.section("phasic summary")
    for key, value in rows:
        terminalreporter.write_line(f"{key:<{width}}  {value}")
