"""`import phasic` is lazy; device-count and SLURM auto-initialization hooks.

Each check runs in a fresh interpreter: what is imported, and whether the JAX
backend has started, are process-wide facts.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap

import pytest

from phasic import auto_parallel


def run(code: str, env: dict[str, str] | None = None, timeout: float = 60) -> str:
    full = {k: v for k, v in os.environ.items()
            if not k.startswith(("SLURM_", "PHASIC_", "PTDALG_"))}
    full.update(env or {})
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=full,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return results(proc.stdout)


def results(stdout: str) -> str:
    """The lines the child printed with the prefix '@ ' (an editable build may log too)."""
    return "\n".join(line[2:] for line in stdout.splitlines() if line.startswith("@ "))


def test_import_phasic_loads_neither_jax_nor_the_extension() -> None:
    out = run("""
        import sys, phasic
        print('@', 'jax' in sys.modules, 'phasic._core' in sys.modules)
        g = phasic.Graph(1)  # the graph API needs the extension, not jax
        print('@', 'jax' in sys.modules, 'phasic._core' in sys.modules)
        phasic.compute_pmf_ffi
        print('@', 'jax' in sys.modules)
    """)
    assert out.split() == ["False", "False", "False", "True", "True"]


def test_unknown_attribute() -> None:
    import phasic

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        phasic.nope  # noqa: B018


@pytest.mark.parametrize("env, expected", [
    ({}, False),
    ({"SLURM_PROCID": "0"}, False),
    ({"SLURM_PROCID": "0", "SLURM_NTASKS": "1", "SLURM_STEP_NODELIST": "n1"}, False),
    ({"SLURM_PROCID": "1", "SLURM_NTASKS": "4", "SLURM_STEP_NODELIST": "n[1-4]"}, True),
    # The batch script: the job's task count, but no step, so no ranks to wait for.
    ({"SLURM_PROCID": "0", "SLURM_NTASKS": "4", "SLURM_JOB_NODELIST": "n[1-4]"}, False),
    ({"SLURM_PROCID": "1", "SLURM_NTASKS": "4", "SLURM_STEP_NODELIST": "n[1-4]",
      "PHASIC_AUTO_INIT": "0"}, False),
    ({"SLURM_PROCID": "1", "SLURM_NTASKS": "4", "SLURM_STEP_NODELIST": "n[1-4]",
      "PHASIC_AUTO_INIT": "1"}, True),
    # SLURM_NPROCS counts tasks too (it was not counted here before)
    ({"SLURM_PROCID": "1", "SLURM_NPROCS": "4", "SLURM_STEP_NODELIST": "n[1-4]"}, True),
    # a partial step environment: no task count, so one process
    ({"SLURM_PROCID": "0", "SLURM_STEP_NODELIST": "n[1-4]"}, False),
    # Open MPI's mpirun
    ({"OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_RANK": "3"}, True),
    ({"OMPI_COMM_WORLD_SIZE": "1", "OMPI_COMM_WORLD_RANK": "0"}, False),
])
def test_auto_init_decision(env: dict[str, str], expected: bool) -> None:
    assert auto_parallel.auto_init_enabled(env) is expected


def test_bad_ntasks_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="SLURM_NTASKS='x' is not an integer"):
        auto_parallel.in_multi_process_step(
            {"SLURM_PROCID": "0", "SLURM_NTASKS": "x", "SLURM_STEP_NODELIST": "n1"})


def test_cpu_count_from_env() -> None:
    assert auto_parallel.cpu_devices_from_env({}) is None
    assert auto_parallel.cpu_devices_from_env({"PTDALG_CPUS": "4"}) == 4
    assert auto_parallel.cpu_devices_from_env({"PHASIC_CPUS": "3", "PTDALG_CPUS": "4"}) == 3
    # a launched rank's own count first, as phasic_distributed.plan() reads it
    assert auto_parallel.cpu_devices_from_env({"PHASIC_LOCAL_DEVICES": "2",
                                               "PHASIC_CPUS": "3"}) == 2
    with pytest.raises(RuntimeError, match="PHASIC_CPUS=0 must be at least 1"):
        auto_parallel.cpu_devices_from_env({"PHASIC_CPUS": "0"})


def test_import_phasic_loads_neither_pydantic_nor_jax_outside_a_job() -> None:
    out = run("""
        import sys, phasic
        print('@', sorted(m for m in ('jax', 'pydantic', 'phasic_distributed.planning')
                          if m in sys.modules))
    """)
    assert out == "[]"


def test_partial_slurm_step_imports_and_is_explained() -> None:
    """Only SLURM_PROCID and a node list: one process, and doctor says what is missing."""
    env = {"SLURM_PROCID": "0", "SLURM_STEP_NODELIST": "n[1-2]"}
    out = run("""
        import phasic, phasic_distributed as pd
        from phasic_distributed.cli import collect
        print('@', pd.scheduler_step(), phasic.auto_parallel.auto_init_enabled())
        report = collect()
        print('@', report['ok'], [p['message'] for p in report['problems']])
    """, env=env)
    first, second = out.split("\n")
    assert first == "None False"
    assert second.startswith("False") and "the task count is unknown" in second


def test_huge_tasks_per_node_in_a_step_is_a_clear_error_not_memory() -> None:
    env = {"SLURM_JOB_ID": "9", "SLURM_STEP_ID": "0", "SLURM_PROCID": "0",
           "SLURM_NTASKS": "2", "SLURM_STEP_NODELIST": "n[1-2]",
           "SLURM_STEP_TASKS_PER_NODE": "1(x999999999)"}
    # The peak RSS of this process's own memory (VmHWM): ru_maxrss would carry over
    # the pytest parent's peak when the child is forked before its exec.
    out = run("""
        try:
            import phasic
        except Exception as e:
            print('@', type(e).__name__, str(e).replace(chr(10), ' '))
        with open('/proc/self/status') as f:
            hwm_kib = next(int(line.split()[1]) for line in f if line.startswith('VmHWM:'))
        print('@', hwm_kib // 1024)
    """, env=env)
    error, rss_mib = out.split("\n")
    assert error.startswith("SlurmEnvironmentError")
    assert "SLURM_STEP_TASKS_PER_NODE" in error and "unset it" in error
    assert int(rss_mib) < 500  # an interpreter and pydantic, not a billion-entry list


def test_set_cpu_devices_before_and_too_late() -> None:
    out = run("""
        import jax, phasic
        phasic.set_cpu_devices(3)
        print('@', len(jax.devices()))
        try:
            phasic.set_cpu_devices(5)
        except RuntimeError as e:
            print('@ ERR', e)
    """)
    first, second = out.split("\n", 1)
    assert first == "3"
    assert second.startswith("ERR") and "before the first JAX computation" in second
    assert "it has 3" in second


def test_missing_phasic_distributed_under_srun_names_the_fix() -> None:
    out = run("""
        import sys
        sys.modules['phasic_distributed'] = None  # make the import fail
        try:
            import phasic
        except ImportError as e:
            print('@', e)
    """, env={"SLURM_PROCID": "0", "SLURM_NTASKS": "2", "SLURM_STEP_NODELIST": "localhost"})
    assert "phasic_distributed" in out and "PHASIC_AUTO_INIT=0" in out


def test_auto_init_off_under_srun() -> None:
    out = run("""
        import sys
        sys.modules['phasic_distributed'] = None  # would fail if it were imported
        import phasic
        print('@ ok')
    """, env={"SLURM_PROCID": "0", "SLURM_NTASKS": "2", "SLURM_STEP_NODELIST": "localhost",
              "PHASIC_AUTO_INIT": "0"})
    assert out.strip() == "ok"


def test_auto_init_starts_two_real_processes() -> None:
    """Two ranks with an srun-shaped environment: `import phasic` joins them."""
    job = str(random.randint(10_000, 99_999))
    code = textwrap.dedent("""
        import jax, phasic
        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp
        m = phasic.compute_moments_ffi(phasic.models.kingman(4), jnp.array([1.0]), 1)
        print('@', jax.process_count(), jax.process_index(), jax.device_count(), float(m[0]))
    """)
    procs = []
    for rank in (0, 1):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("SLURM_", "PHASIC_", "PTDALG_"))}
        env.update(SLURM_JOB_ID=job, SLURM_STEP_ID="0", SLURM_PROCID=str(rank),
                   SLURM_LOCALID=str(rank), SLURM_NODEID="0", SLURM_NTASKS="2",
                   SLURM_STEP_NODELIST="localhost", SLURM_JOB_NODELIST="localhost",
                   SLURM_TASKS_PER_NODE="2", SLURM_STEP_TASKS_PER_NODE="2",
                   SLURM_CPUS_PER_TASK="1", PHASIC_CPUS="2")
        procs.append(subprocess.Popen([sys.executable, "-c", code], env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    outs = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=90)
            assert p.returncode == 0, f"rank {procs.index(p)} failed:\n{err[-3000:]}"
            outs.append(results(out).split())
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    # 2 processes x 2 CPU devices; E[T_MRCA] for n = 4 is 2 (1 - 1/4) = 1.5
    assert sorted(outs) == [["2", "0", "4", "1.5"], ["2", "1", "4", "1.5"]]
