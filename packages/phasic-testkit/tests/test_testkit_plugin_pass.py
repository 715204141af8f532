"""Passing multiprocess tests, parametrization, fixtures, bad markers, xdist, SLURM steps."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest_plugins = ["pytester"]

PASSING = '''
import os
import numpy as np
import pytest
import jax
import jax.numpy as jnp
from phasic_testkit import (assert_allclose_across_processes, assert_equal_across_processes,
                            assert_same_on_all_devices, barrier, gather)

@pytest.mark.multiprocess(nprocs=2, devices_per_process=2, timeout=60)
def test_two_ranks(rank, nprocs, jax_devices_info):
    assert nprocs == 2 and jax.process_count() == 2 and jax.process_index() == rank
    assert jax_devices_info["local_device_count"] == 2
    assert jax_devices_info["global_device_count"] == 4
    # a replicated computation over all 4 devices of both processes
    mesh = jax.make_mesh((4,), ("d",), axis_types=(jax.sharding.AxisType.Auto,))
    x = jax.device_put(jnp.arange(8.0), jax.NamedSharding(mesh, jax.P()))
    total = jax.jit(lambda v: jnp.sum(v * v))(x)
    assert_same_on_all_devices(total)
    assert float(total.addressable_shards[0].data) == 140.0   # 0^2 + ... + 7^2
    assert_allclose_across_processes(total.addressable_shards[0].data, rtol=0.0)
    assert_equal_across_processes(np.arange(5))
    assert [int(v) for v in gather(rank * 10)] == [0, 10]
    barrier("done", timeout=30)

@pytest.mark.multiprocess(nprocs=[1, 3], timeout=60)
def test_listed(nprocs):
    assert jax.process_count() == nprocs
    assert os.environ["PHASIC_NUM_PROCESSES"] == str(nprocs)

@pytest.mark.multiprocess(nprocs=2, timeout=60)
@pytest.mark.parametrize("k", [5])
def test_with_other_params(k, rank):
    assert_equal_across_processes(np.array([k]))

def test_plain(rank, nprocs):
    assert (rank, nprocs) == (0, 1)
    assert "PHASIC_TESTKIT_RESULT" not in os.environ
'''


def test_passing_tests_pass(pytester: pytest.Pytester) -> None:
    # a project's addopts may use terminal options; the ranks must accept them too
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\naddopts = "-ra --tb=short"\n')
    pytester.makepyfile(test_inner=PASSING)
    result = pytester.runpytest_subprocess("-v", "-p", "no:xdist", timeout=240)
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines([
        "*test_two_ranks PASSED*",
        "*test_listed?nprocs=1? PASSED*",
        "*test_listed?nprocs=3? PASSED*",
        "*test_with_other_params?5? PASSED*",
        "*test_plain PASSED*",
    ])


BAD_MARKERS = {
    "nprocs=0": "nprocs must be a positive int or a list of them, got 0",
    "nprocs=[]": "nprocs=[] lists no process count",
    "devices_per_process='2'": "devices_per_process must be a positive int, got '2'",
    "timeout=-1": "timeout must be a positive, finite number of seconds",
    "timeout=float('inf')": "timeout must be a positive, finite number of seconds",
    "nprocs=10**6": "nprocs=1000000 is more than 128 local processes",
    "procs=2": "unknown multiprocess argument(s) ['procs']",
    "2": "give multiprocess arguments by name",
}


def test_bad_markers_are_clear_errors(pytester: pytest.Pytester) -> None:
    """Each bad marker is a collection error naming the test and the fix; nothing runs."""
    for i, marker in enumerate(BAD_MARKERS):
        pytester.makepyfile(**{f"test_bad{i}": f"""
import pytest

@pytest.mark.multiprocess({marker})
def test_x():
    pass
"""})
    # in-process: marker errors are found at collection, before any rank is spawned
    result = pytester.runpytest("-p", "no:xdist")
    out = result.stdout.str()
    assert result.ret != 0
    for i, message in enumerate(BAD_MARKERS.values()):
        assert f"test_bad{i}.py::test_x: " in out and message in out, (message, out)
    assert f"{len(BAD_MARKERS)} errors" in out


XDIST = '''
import os, pathlib
import pytest

@pytest.mark.multiprocess(nprocs=2, timeout=60)
@pytest.mark.parametrize("i", range(4))
def test_port(i, rank, tmp_path_factory):
    out = pathlib.Path(os.environ["PORTS_DIR"]) / f"{i}-{rank}.json"
    out.write_text(os.environ["PHASIC_COORDINATOR"])
'''


def test_xdist_workers_use_distinct_ports(
    pytester: pytest.Pytester, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import xdist  # noqa: F401 - a test dependency of this package; fail loudly if absent

    pytester.makepyfile(test_inner=XDIST)
    ports = tmp_path / "ports"
    ports.mkdir()
    monkeypatch.setenv("PORTS_DIR", str(ports))
    result = pytester.runpytest_subprocess("-n", "2", timeout=240)
    result.assert_outcomes(passed=4)
    seen = {p.name: p.read_text() for p in ports.iterdir()}
    assert len(seen) == 8
    per_test = {i: {seen[f"{i}-{r}.json"] for r in (0, 1)} for i in range(4)}
    assert all(len(v) == 1 for v in per_test.values())  # both ranks: one coordinator
    assert len({next(iter(v)) for v in per_test.values()}) == 4  # four distinct ports


SLURM = '''
import os
import numpy as np
import pytest
import jax
from phasic_testkit import assert_allclose_across_processes

@pytest.mark.multiprocess(nprocs=2, timeout=60)
def test_in_step(rank, nprocs):
    assert "PHASIC_TESTKIT_RESULT" not in os.environ   # not spawned: SLURM started us
    assert (jax.process_index(), jax.process_count()) == (rank, nprocs) == (rank, 2)
    assert_allclose_across_processes(np.array([1.0 + (rank == 1)]))

@pytest.mark.multiprocess(nprocs=3, timeout=60)
def test_wrong_size():
    pass
'''


def _free_port() -> int:
    import phasic_distributed

    return int(phasic_distributed.free_port())


def test_slurm_step_runs_in_place_and_rank0_reports(tmp_path) -> None:
    """Two processes with the variables srun gives its tasks (srun itself is tested in
    the repository's SLURM suite); rank 1's divergence shows in rank 0's report only."""
    (tmp_path / "test_step.py").write_text(SLURM)
    port = _free_port()
    procs = []
    for r in range(2):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("SLURM_", "PHASIC_", "PYTEST_XDIST"))}
        env.update({
            "SLURM_JOB_ID": "4242", "SLURM_STEP_ID": "0", "SLURM_NTASKS": "2",
            "SLURM_PROCID": str(r), "SLURM_LOCALID": str(r), "SLURM_NODEID": "0",
            "SLURM_STEP_NODELIST": "localhost", "SLURM_JOB_NODELIST": "localhost",
            "SLURM_STEP_TASKS_PER_NODE": "2", "SLURM_TASKS_PER_NODE": "2",
            "SLURM_CPUS_PER_TASK": "1", "SLURMD_NODENAME": "localhost",
            "PHASIC_COORDINATOR_PORT": str(port), "JAX_PLATFORMS": "cpu",
        })
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist",
             "-rs", "test_step.py"],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True))
    outs = [p.communicate(timeout=180)[0] for p in procs]
    assert [p.returncode for p in procs] == [1, 1], outs
    assert "test session starts" in outs[0] and "test session starts" not in outs[1]
    assert "rank(s) [1] diverge from rank 0" in outs[0]
    assert "rank 1: [2.] (shape (1,), dtype float64)" in outs[0]
    assert "needs 3 processes; this slurm job has 2 ranks" in outs[0]
    assert "1 failed, 1 skipped" in outs[0]


def test_result_json_is_what_the_parent_reads(tmp_path) -> None:
    from phasic_testkit.report import RankResult, read_result, write_result

    path = str(tmp_path / "r.json")
    assert read_result(path) is None
    write_result(path, RankResult(2, "failed", "boom", when="setup"))
    assert read_result(path) == RankResult(2, "failed", "boom", when="setup")
    assert json.loads(open(path).read())["rank"] == 2


def test_taken_coordinator_port_is_retried(pytester: pytest.Pytester) -> None:
    """The first probed port is taken (held by a listening socket) before rank 0 binds
    it: rank 0 reports the port in use, and testkit reruns the test on a new port."""
    pytester.makeconftest('''
import socket
from phasic_testkit import _distributed

_held = []
_real = _distributed.free_port

def _taken_once():
    with open("free_port_calls.txt", "a") as fh:
        fh.write("call\\n")
    if _held:
        return _real()
    s = socket.socket()
    s.bind(("", 0))
    s.listen()
    _held.append(s)
    return s.getsockname()[1]

_distributed.free_port = _taken_once
''')
    pytester.makepyfile(test_inner='''
import pytest

@pytest.mark.multiprocess(nprocs=2, timeout=60)
def test_x(rank):
    pass
''')
    result = pytester.runpytest_subprocess("-p", "no:xdist", timeout=120)
    result.assert_outcomes(passed=1)
    # two launches: the first on the taken port, the second on a free one
    assert (pytester.path / "free_port_calls.txt").read_text().count("call") == 2
