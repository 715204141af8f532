"""initialize() in fresh processes: device count, threads, idempotency, too-late and bad coordinators."""

from __future__ import annotations

import socket
import time

from distributed_helpers import clean_env

from phasic_distributed import free_port


def test_sets_devices_and_threads_even_if_jax_was_imported_first(run_python):
    r = run_python("""
        import os, jax                      # importing jax first is fine
        import phasic_distributed as pd
        p = pd.initialize(pd.plan(cpus=4))
        assert pd.is_initialized() and pd.current_plan() == p
        print(len(jax.local_devices()), jax.process_count(), os.environ["OMP_NUM_THREADS"],
              p.omp_threads_per_device, p.source)
    """)
    assert r.returncode == 0, r.stderr
    devices, processes, omp, threads, source = r.stdout.split()
    assert (devices, processes, source) == ("4", "1", "single")
    assert omp == threads  # cores // devices, at least 1


def test_phasic_cpus_and_old_ptdalg_cpus(run_python):
    code = "import jax, phasic_distributed as pd; pd.initialize(); print(len(jax.devices()))"
    assert run_python(code, clean_env(PTDALG_CPUS="3")).stdout.split() == ["3"]
    assert run_python(code, clean_env(PHASIC_CPUS="5", PTDALG_CPUS="3")).stdout.split() == ["5"]


def test_idempotent_and_refuses_a_different_plan(run_python):
    r = run_python("""
        import phasic_distributed as pd
        a = pd.initialize(pd.plan(cpus=2))
        assert pd.initialize(pd.plan(cpus=2)) is a
        try:
            pd.initialize(pd.plan(cpus=3))
        except pd.InitializationError as e:
            print("refused:", e)
    """)
    assert r.returncode == 0, r.stderr
    assert "refused: already initialized" in r.stdout and "start a new process" in r.stdout


def test_too_late_after_a_computation_says_how_to_fix(run_python):
    r = run_python("""
        import jax.numpy as jnp
        import phasic_distributed as pd
        jnp.ones(3).sum().block_until_ready()
        try:
            pd.initialize(pd.plan(cpus=4))
        except pd.InitializationError as e:
            print(e)
    """)
    assert r.returncode == 0, r.stderr
    assert "a JAX computation already ran" in r.stdout
    assert "before the first JAX computation" in r.stdout
    assert "Importing jax first is fine" in r.stdout


def test_after_a_computation_the_matching_single_process_plan_is_accepted(run_python):
    r = run_python("""
        import jax.numpy as jnp, phasic_distributed as pd
        jnp.ones(1).block_until_ready()      # backend started with 1 device
        print(pd.initialize(pd.plan(cpus=1)).local_device_count)
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1"]


def test_bad_timeout_is_rejected(run_python):
    r = run_python("""
        import phasic_distributed as pd
        for t in (0, -1, float("nan"), "5"):
            try:
                pd.initialize(timeout=t)
            except pd.InitializationError as e:
                print("ok", e)
    """)
    assert r.stdout.count("ok timeout=") == 4, r.stdout + r.stderr


def test_bad_heartbeat_timeout_is_rejected(run_python):
    r = run_python("""
        import phasic_distributed as pd
        for t in (0, -3, 2.5, True, "10"):
            try:
                pd.initialize(heartbeat_timeout=t)
            except pd.InitializationError as e:
                print("ok", e)
    """)
    assert r.stdout.count("ok heartbeat_timeout=") == 5, r.stdout + r.stderr
    assert "positive whole number of seconds" in r.stdout


def _launcher_env(coordinator: str, rank: int, n: int = 2) -> dict[str, str]:
    return clean_env(PHASIC_COORDINATOR=coordinator, PHASIC_NUM_PROCESSES=str(n),
                     PHASIC_PROCESS_ID=str(rank))


INIT = """
    import time, jax, phasic_distributed as pd   # jax's import time is not the coordinator's
    t = time.monotonic()
    try:
        pd.initialize(timeout=2)
    except pd.DistributedError as e:
        print(f"{type(e).__name__} after {time.monotonic() - t:.1f}s: {e}")
"""


def test_unreachable_coordinator_fails_within_timeout(run_python):
    port = free_port()  # nobody listens here
    start = time.monotonic()
    r = run_python(INIT, _launcher_env(f"127.0.0.1:{port}", rank=1), timeout=30)
    assert time.monotonic() - start < 15
    assert "CoordinatorError" in r.stdout, r.stdout + r.stderr
    assert f"rank 1: coordinator 127.0.0.1:{port} not reachable within 2.0 s" in r.stdout
    seconds = float(r.stdout.split(" after ")[1].split("s:")[0])
    assert 1.9 <= seconds <= 4


def test_unresolvable_coordinator_host_names_host_port_and_rank(run_python):
    r = run_python(INIT, _launcher_env("no-such-host.invalid:23456", rank=1), timeout=30)
    assert "CoordinatorError" in r.stdout, r.stdout + r.stderr
    assert "rank 1: coordinator host 'no-such-host.invalid' (port 23456) does not resolve" in r.stdout


def test_rank0_with_busy_port(run_python):
    with socket.socket() as s:
        s.bind(("", 0))
        s.listen()
        port = s.getsockname()[1]
        r = run_python(INIT, _launcher_env(f"127.0.0.1:{port}", rank=0), timeout=30)
    assert f"rank 0: coordinator port {port} is in use" in r.stdout, r.stdout + r.stderr
    assert "PHASIC_COORDINATOR_PORT" in r.stdout


def test_rank0_alone_ends_within_timeout_and_names_itself(run_python):
    # The other rank never comes: JAX aborts the process after the timeout; it
    # must not hang, and the log must say which rank waited for which coordinator.
    port = free_port()
    start = time.monotonic()
    r = run_python(INIT, _launcher_env(f"127.0.0.1:{port}", rank=0), timeout=60)
    assert time.monotonic() - start < 30
    assert r.returncode != 0
    assert f"[phasic_distributed rank 0/2] connecting to coordinator 127.0.0.1:{port}" in r.stderr
