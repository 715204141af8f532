"""Failing multiprocess tests: every way a rank can fail is reported by rank number.

One inner pytest run holds all the failing cases (spawning ranks is what costs
time); each case is then checked in its own test against that run's output.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from testkit_helpers import durations, sections

HANG_TIMEOUT = 8  # long enough for a rank to import jax on a loaded 2-core machine

INNER = f'''
import os, signal, time
import numpy as np
import pytest
from phasic_testkit import assert_allclose_across_processes, assert_equal_across_processes, barrier

@pytest.mark.multiprocess(nprocs=2, timeout=60)
def test_diverge(rank):
    value = np.array([0.25, 1.5]) + (0.125 if rank == 1 else 0.0)
    assert_allclose_across_processes(value, rtol=1e-12)

@pytest.mark.multiprocess(nprocs=2, timeout=60)
def test_equal_dtype(rank):
    assert_equal_across_processes(np.arange(3, dtype=np.int32 if rank else np.int64))

@pytest.mark.multiprocess(nprocs=2, timeout={HANG_TIMEOUT})
def test_hang(rank):
    if rank == 1:
        while True:
            time.sleep(0.1)

@pytest.mark.multiprocess(nprocs=2, timeout=60)
def test_exit3(rank):
    if rank == 1:
        print("rank 1 is about to exit", flush=True)
        os._exit(3)
    time.sleep(600)

@pytest.mark.multiprocess(nprocs=2, timeout=60)
def test_sigkill(rank):
    if rank == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(600)

@pytest.mark.multiprocess(nprocs=2, timeout=60)
def test_failfast(rank):
    if rank == 0:
        raise ValueError("rank 0 broke on purpose")
    time.sleep(600)

@pytest.mark.multiprocess(nprocs=2, timeout=60)
@pytest.mark.parametrize("seed", [os.getpid()])  # differs in every process: a bad id
def test_unstable_id(seed):
    pass

@pytest.mark.multiprocess(nprocs=2, timeout=60)
def test_barrier_missing(rank):
    if rank == 0:
        barrier("after-setup", timeout=1.5)
    else:
        time.sleep(600)
'''


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    """Run the inner file once for the whole module."""
    path = tmp_path_factory.mktemp("inner")
    (path / "test_inner.py").write_text(INNER)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--durations=0", "-rN",
         "-p", "no:xdist", "test_inner.py"],
        cwd=path, capture_output=True, text=True, timeout=240,
    )
    return proc.returncode, proc.stdout + proc.stderr


def test_all_fail(outcome):
    code, out = outcome
    assert code == 1, out
    assert "8 failed" in out, out


def test_diverging_rank_named_with_both_values(outcome):
    text = sections(outcome[1])["test_diverge"]
    assert "rank(s) [1] diverge from rank 0" in text
    assert "rank 0: [0.25 1.5 ]" in text
    assert "rank 1: [0.375 1.625]" in text
    assert "max |diff| = 0.125" in text


def test_dtype_difference_is_a_difference(outcome):
    text = sections(outcome[1])["test_equal_dtype"]
    assert "rank(s) [1] diverge" in text and "dtype int32" in text and "dtype int64" in text


def test_hung_rank_is_killed_at_timeout_with_its_stack(outcome):
    text = sections(outcome[1])["test_hang"]
    assert f"rank 1: HUNG - still running after the {HANG_TIMEOUT} s timeout" in text
    assert "Python stack of rank 1" in text
    line = INNER.splitlines().index("            time.sleep(0.1)") + 1
    assert f'test_inner.py", line {line} in test_hang' in text  # the sleeping line
    assert "rank 0: passed" in text
    took = durations(outcome[1])["test_hang"]
    assert HANG_TIMEOUT <= took < HANG_TIMEOUT + 10, took


def test_os_exit_reported_with_exit_code(outcome):
    text = sections(outcome[1])["test_exit3"]
    assert "rank 1: DIED without reporting a result (exit code 3)" in text
    assert "rank 1 is about to exit" in text  # its output tail
    assert "rank 0: stopped by testkit" in text
    assert durations(outcome[1])["test_exit3"] < 20


def test_signal_death_named(outcome):
    text = sections(outcome[1])["test_sigkill"]
    assert "rank 1: DIED without reporting a result (killed by signal SIGKILL" in text


def test_fail_fast_stops_the_other_rank(outcome):
    text = sections(outcome[1])["test_failfast"]
    assert "failed on 1 of 2 ranks: rank 0 (failed)" in text
    assert "ValueError: rank 0 broke on purpose" in text
    assert "rank 1: stopped by testkit after another rank failed" in text
    # rank 1 sleeps 600 s: it must have been stopped within seconds
    assert durations(outcome[1])["test_failfast"] < 20


def test_barrier_names_missing_rank(outcome):
    text = sections(outcome[1])["test_barrier_missing"]
    assert "barrier[after-setup]: rank(s) [1] of 2 did not arrive within 1.5 s" in text


def test_node_id_missing_in_rank_is_explained(outcome):
    name = next(k for k in sections(outcome[1]) if k.startswith("test_unstable_id"))
    text = sections(outcome[1])[name]
    assert "rank 0: FAILED during collect" in text
    assert "ran no test" in text and "generated non-deterministically" in text
