"""The structure compiler on graphs with large elimination fill (chord cycles).

Moments are checked against the dense (-S)^-1 solve of reference.py, the fill against
scipy's SuperLU (COLAMD order) on the same matrix, and the memory budget's error.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import core_reference as reference
import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg
from core_graphs import ChordCycle, chord_cycle

from phasic import models
from phasic._ext import core

BUDGET_WORDS = ("nonzeros", "multiply-adds", "budget", "PHASIC_STRUCTURE_MEMORY_BUDGET")


@pytest.fixture(scope="module", params=[500, 1000, 2000])
def chord(request: pytest.FixtureRequest) -> tuple[ChordCycle, str]:
    c = chord_cycle(request.param, seed=request.param)
    return c, c.graph().to_json()


def test_chord_cycle_moments_match_dense_solve(chord: tuple[ChordCycle, str]) -> None:
    c, text = chord
    s = core().Structure.from_json(text)
    assert not s.acyclic and s.transient_length == c.n
    theta = np.array([1.3])
    got = np.asarray(s.moments(theta, 3, None))
    np.testing.assert_allclose(got, reference.moments(text, theta, 3), rtol=1e-11, atol=0.0)


def test_chord_cycle_fill_no_larger_than_superlu_colamd(chord: tuple[ChordCycle, str]) -> None:
    c, text = chord
    s = core().Structure.from_json(text)
    tt = ~c.absorbing
    exit_rate = np.bincount(c.src, weights=c.coef, minlength=c.n)  # theta = 1
    a = scipy.sparse.csc_matrix((-c.coef[tt], (c.src[tt], c.dst[tt])), shape=(c.n, c.n))
    a = a + scipy.sparse.diags(exit_rate)
    lu = scipy.sparse.linalg.splu(a.tocsc(), permc_spec="COLAMD")
    superlu_offdiag = lu.L.nnz + lu.U.nnz - 2 * c.n
    ours = s.fill_length + int(tt.sum())  # nonzeros of L and U off the diagonal
    assert ours <= superlu_offdiag, (ours, superlu_offdiag)


@pytest.mark.parametrize("n", [10, 20, 30])
def test_two_island_fill_no_larger_than_superlu_colamd(n: int) -> None:
    # Structured cycles (migration between islands), where the greedy order is kept.
    g = models.two_island(n)
    s = g.structure()
    d = reference.dense(g, np.ones(s.param_length))
    lu = scipy.sparse.linalg.splu(scipy.sparse.csc_matrix(-d.T), permc_spec="COLAMD")
    edges = np.count_nonzero(d.T - np.diag(np.diag(d.T)))
    ours = s.fill_length + edges
    assert ours <= lu.L.nnz + lu.U.nnz - 2 * s.transient_length
    theta = np.ones(s.param_length)
    np.testing.assert_allclose(np.asarray(s.moments(theta, 3, None)),
                               reference.moments(g, theta, 3), rtol=1e-12)


def test_chord_cycle_rewards_jacobian_and_discrete() -> None:
    c = chord_cycle(400, seed=7)
    text = c.graph().to_json()
    s = core().Structure.from_json(text)
    rewards = np.random.default_rng(1).uniform(0.0, 2.0, size=c.n + 2)
    theta = np.array([0.7])
    got = np.asarray(s.moments(theta, 2, rewards))
    np.testing.assert_allclose(got, reference.moments(text, theta, 2, rewards), rtol=1e-11)
    # every transient rate is c * theta[0], absorption constant: central differences of
    # the dense reference, whose truncation error at this step is far below the tolerance
    vals, jac = s.moments_jac(theta, 2, None)
    h = 1e-5
    fd = (reference.moments(text, theta + h, 2) - reference.moments(text, theta - h, 2)) / (2 * h)
    np.testing.assert_allclose(np.asarray(jac), fd, rtol=1e-7)
    np.testing.assert_allclose(np.asarray(vals), reference.moments(text, theta, 2), rtol=1e-11)
    dtext = c.graph(discrete=True).to_json()
    d = core().Structure.from_json(dtext)
    np.testing.assert_allclose(np.asarray(d.moments(np.array([1.0]), 3, None)),
                               reference.moments(dtext, np.array([1.0]), 3), rtol=1e-11)


def _budget_error(excinfo: pytest.ExceptionInfo[ValueError], budget: int) -> None:
    msg = str(excinfo.value)
    for word in BUDGET_WORDS:
        assert word in msg, (word, msg)
    assert f"({budget} bytes)" in msg, msg


def test_beyond_the_budget_raises_naming_estimates_and_budget() -> None:
    g = chord_cycle(1000, seed=3).graph()
    text = g.to_json()
    budget = 200_000
    with pytest.raises(ValueError) as excinfo:
        core().Structure.from_json(text, memory_budget=budget)
    _budget_error(excinfo, budget)
    with pytest.raises(ValueError) as excinfo:
        g.structure(memory_budget=budget)
    _budget_error(excinfo, budget)
    # the process survives, and the default budget compiles the same graph
    assert g.structure().transient_length == 1000
    assert core().Structure.from_json(text, memory_budget=10**9).fill_length > 0


def test_budget_caught_while_counting_fill_between_components() -> None:
    # Acyclic vertices pointing into a cycle: each one's row of L fills with the part of
    # the cycle it reaches, which the estimate (inside components) does not see; the
    # exact count, row by row, does.
    c = chord_cycle(300, seed=5)
    g = c.graph()
    vs = g.vertices()
    for i in range(400):
        v = g.find_or_create_vertex((10_000 + i,))
        v.add_edge(vs[1 + (7 * i) % c.n], 1.0)
        v.add_edge(vs[c.n + 1], 0.1)  # the absorbing vertex
    text = g.to_json()
    entries = core().Structure.from_json(text).fill_length + int((~c.absorbing).sum()) + 400
    budget = 12 * (entries - 1)
    with pytest.raises(ValueError, match="counted exactly") as excinfo:
        core().Structure.from_json(text, memory_budget=budget)
    _budget_error(excinfo, budget)
    assert core().Structure.from_json(text, memory_budget=12 * entries).fill_length > 0


def _run_child(script: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `script` in a fresh Python with this folder importable and `env` set."""
    full = dict(os.environ, **env)
    full["PYTHONPATH"] = os.path.dirname(__file__) + os.pathsep + full.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", script], env=full, capture_output=True,
                          text=True, timeout=300)


_REJECT_SCRIPT = textwrap.dedent("""
    from core_graphs import chord_cycle
    from phasic._ext import core
    def peak_kib():  # VmHWM: this process's own high-water mark (ru_maxrss keeps pytest's)
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    text = chord_cycle(4000, seed=4).graph().to_json()
    before = peak_kib()
    try:
        core().Structure.from_json(text, memory_budget=1 << 20)
    except ValueError as e:
        print("ERROR", e)
    print("GROWTH_KIB", peak_kib() - before)
""")


def test_rejection_happens_before_the_fill_is_allocated() -> None:
    # The 4,000-vertex chord cycle's factors hold 5.1e6 nonzeros (62 MiB at 12 bytes):
    # refusing it must cost memory of the order of the graph (here < 16 MiB), not of
    # the fill. A fresh process, so the RSS high-water mark (VmHWM) is this compile's.
    proc = _run_child(_REJECT_SCRIPT)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("ERROR compiling this graph needs more memory"), proc.stdout
    assert "budget 1.0 MiB (1048576 bytes)" in lines[0], lines[0]
    growth_kib = int(lines[1].split()[1])
    assert growth_kib < 16 * 1024, growth_kib


@pytest.mark.parametrize("budget", [0, -5])
def test_bad_budget_argument(budget: int) -> None:
    with pytest.raises(ValueError, match="memory_budget must be a positive number of bytes"):
        core().Structure.from_json(chord_cycle(20).graph().to_json(), memory_budget=budget)


_SCRIPT = textwrap.dedent("""
    import jax
    jax.config.update("jax_enable_x64", True)
    import numpy as np
    import phasic
    from core_graphs import chord_cycle
    for n in (600, 5):
        try:
            m = phasic.compute_moments_ffi(chord_cycle(n, seed=2).graph(), np.array([1.0]), 1)
            print("OK", n, float(m[0]) > 0)
        except ValueError as e:
            print("ERROR", n, e)
""")


@pytest.mark.parametrize(("value", "small"), [("100K", "OK 5 True"), ("lots", "ERROR 5")])
def test_environment_budget_reaches_the_ffi_path(value: str, small: str) -> None:
    proc = _run_child(_SCRIPT, PHASIC_STRUCTURE_MEMORY_BUDGET=value)
    assert proc.returncode == 0, proc.stderr  # the process survives the errors
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("ERROR 600"), proc.stdout
    if value == "100K":
        assert "budget 0.1 MiB (102400 bytes)" in lines[0], lines[0]
    else:
        assert "PHASIC_STRUCTURE_MEMORY_BUDGET is 'lots'" in lines[0], lines[0]
    assert lines[1].startswith(small), proc.stdout
