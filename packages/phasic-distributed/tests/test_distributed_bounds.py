"""Huge SLURM values are refused before they are expanded: small memory, a recorded problem.

A few bytes of text can describe a billion nodes (``1(x999999999)``) or, through
many ranges, tens of millions of host names. Sizes are checked from the parsed
numbers first; these tests measure the peak allocation with tracemalloc.
"""

from __future__ import annotations

import tracemalloc

import pytest

from phasic_distributed import SlurmEnvironment, expand_hostlist, parse_tasks_per_node
from phasic_distributed.hostlist import MAX_HOSTS, MAX_NAME

#: Far below what expanding any of the inputs would take (hundreds of MB to GB).
PEAK_LIMIT = 2 * 1024 * 1024

#: 2.4 KB of text naming 300 x 65536 hosts.
MANY_RANGES = "n[" + ",".join(["0-65535"] * 300) + "]"
#: Host names a thousand digits long, 65536 of them.
WIDE_NAMES = "n[" + "0" * 1000 + "-65535]"


def peak_bytes(fn, *args):
    """(result or exception, peak bytes allocated while fn ran)."""
    tracemalloc.start()
    try:
        try:
            result = fn(*args)
        except ValueError as exc:
            result = exc
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("text, fragment", [
    (MANY_RANGES, f"more than the limit of {MAX_HOSTS} hosts"),
    (WIDE_NAMES, f"up to 1001 characters long (limit {MAX_NAME})"),
    ("a[1-1000]b[1-1000]c[1-10]", f"more than the limit of {MAX_HOSTS} hosts"),
    ("n[0-65535],m[0-1]", f"more than the limit of {MAX_HOSTS} hosts"),
])
def test_hostlist_refuses_before_allocating(text, fragment):
    error, peak = peak_bytes(expand_hostlist, text)
    assert isinstance(error, ValueError) and fragment in str(error), error
    # "n[0-65535],m[0-1]" expands its first, allowed entry (65536 names) before
    # the second goes over; that is the largest allocation a refused list makes
    limit = 16 * PEAK_LIMIT if text.startswith("n[0-65535],") else PEAK_LIMIT
    assert peak < limit, f"{peak} bytes for {len(text)} characters"


def test_the_cap_itself_is_accepted():
    assert len(expand_hostlist(f"n[0-{MAX_HOSTS - 1}]")) == MAX_HOSTS


def test_tasks_per_node_refuses_before_allocating():
    error, peak = peak_bytes(parse_tasks_per_node, "1(x999999999)")
    assert isinstance(error, ValueError)
    assert f"describes more than {MAX_HOSTS} nodes" in str(error)
    assert peak < PEAK_LIMIT
    assert parse_tasks_per_node(f"2(x{MAX_HOSTS})") == [2] * MAX_HOSTS


STEP = {"SLURM_JOB_ID": "9", "SLURM_STEP_ID": "0", "SLURM_PROCID": "0", "SLURM_NTASKS": "2",
        "SLURM_STEP_NODELIST": "n[1-2]", "SLURM_STEP_TASKS_PER_NODE": "1(x2)"}


@pytest.mark.parametrize("over, code, variable", [
    ({"SLURM_STEP_TASKS_PER_NODE": "1(x999999999)"}, "bad-tasks-per-node",
     "SLURM_STEP_TASKS_PER_NODE"),
    ({"SLURM_STEP_NODELIST": MANY_RANGES}, "bad-nodelist", "SLURM_STEP_NODELIST"),
    ({"SLURM_STEP_NODELIST": WIDE_NAMES}, "bad-nodelist", "SLURM_STEP_NODELIST"),
])
def test_from_env_records_the_problem_with_its_fix(over, code, variable):
    s, peak = peak_bytes(SlurmEnvironment.from_env, {**STEP, **over})
    assert isinstance(s, SlurmEnvironment)  # never raises
    assert peak < PEAK_LIMIT
    (problem,) = [p for p in s.problems if p.code == code]
    assert problem.severity == "error"
    assert problem.fix == f"{variable} is set by srun; do not set it by hand (unset it)"
