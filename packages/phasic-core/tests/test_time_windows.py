"""Per-time window sums against the former term-by-term sums, on the same sweep.

The derivative and log-density sweeps record each step's term once and sum every
requested time over a window around its Poisson mode (time_windows.hpp).
`_core.set_time_windows(False)` makes them sum each time term by term from n = 0
with a saddle-point weight per term, as they did before; both read the same terms,
so they differ only by rounding and by the window's left cut (<= 1e-14 of the
value), far inside the 1e-10 truncation bound each carries. The tolerance below,
1e-12 relative (derivatives: of the time's largest partial of log f, or 1e-12
absolute), leaves room for the recurrence's rounding over long windows; the plain
pdf also allows its documented absolute bound (1e-21 of the largest density).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from core_graphs import random_graph

import phasic
from phasic import _core, models

jax.config.update("jax_enable_x64", True)

REL = 1e-12


def both_ways(fn):
    """fn() with the windows on, then term by term; the switches restored either way.

    Anchors stay off: dense times would otherwise share them (test_time_anchors.py
    checks those against exact densities), and this suite compares the windows.
    """
    try:
        _core.set_time_anchors(False)
        _core.set_time_windows(True)
        new = fn()
        _core.set_time_windows(False)
        old = fn()
    finally:
        _core.set_time_windows(True)
        _core.set_time_anchors(True)
    return new, old


def log_pdf_and_grad(text: str, theta: np.ndarray, times: np.ndarray):
    th = jnp.asarray(theta)
    t = jnp.asarray(times)
    logf = np.asarray(phasic.compute_log_pmf_ffi(text, th, t))
    dlogf = np.asarray(jax.jacfwd(lambda x: phasic.compute_log_pmf_ffi(text, x, t))(th))
    pdf = np.asarray(phasic.compute_pmf_ffi(text, th, t))
    return logf, dlogf, pdf


def assert_close(new, old) -> None:
    (lf_n, g_n, f_n), (lf_o, g_o, f_o) = new, old
    np.testing.assert_array_equal(np.isfinite(lf_n), np.isfinite(lf_o))
    fin = np.isfinite(lf_o)
    # log f: relative error of f is the absolute error of log f.
    assert np.max(np.abs(lf_n[fin] - lf_o[fin]), initial=0.0) <= REL
    scale = np.maximum(np.max(np.abs(g_o), axis=-1, keepdims=True), 1.0)
    assert np.max(np.abs(g_n - g_o) / scale, initial=0.0) <= REL
    # The plain pdf may stop a time once its tail is below 1e-22 of the largest density
    # seen (its documented absolute escape, 1e-21 of the largest): far-tail times are
    # compared to that, the rest relatively.
    assert np.all(np.abs(f_n - f_o) <= REL * f_o + 2e-21 * f_o.max())


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("cyclic", [False, True])
def test_random_graphs_match_the_term_by_term_sums(seed: int, cyclic: bool) -> None:
    case = random_graph(500 + seed, cyclic=cyclic)
    text = case.graph.to_json()
    mean = float(case.graph.moments(1, theta=case.theta)[0])
    rng = np.random.default_rng(seed)
    # unsorted, with 0, repeats, and times far out in the tail (tiny densities)
    times = np.concatenate([rng.exponential(mean, 150), [0.0, mean, mean, 40 * mean]])
    rng.shuffle(times)
    assert_close(*both_ways(lambda: log_pdf_and_grad(text, case.theta, times)))


@pytest.mark.parametrize("n", [5, 10, 20])
def test_kingman_matches_the_term_by_term_sums(n: int) -> None:
    text = models.kingman(n).to_json()
    k = np.arange(2, n + 1)
    rng = np.random.default_rng(n)
    times = rng.exponential(2.0 / (k * (k - 1)), size=(300, k.size)).sum(axis=1)
    before = dict(_core.sweep_counts())
    for theta in (0.7, 1.0, 2.5):
        new, old = both_ways(lambda th=theta: log_pdf_and_grad(text, np.array([th]), times))
        assert_close(new, old)
    after = _core.sweep_counts()
    # n = 5 and 10 (under 150 states, under 1,000 steps) run one sweep at the largest
    # rate, n = 20 the piecewise sweeps.
    key = "piecewise" if n == 20 else "single"
    assert after[key] > before[key]


def test_deep_tail_and_rescaled_sweeps_match() -> None:
    """Densities far below 1e-308 (the vector rescaled during the sweep)."""
    text = models.kingman(5).to_json()
    times = np.array([1e-9, 0.3, 30.0, 300.0, 900.0])
    new, old = both_ways(lambda: log_pdf_and_grad(text, np.array([1.0]), times))
    assert_close(new, old)
    assert np.all(np.isfinite(new[0])) and new[0][-1] < -700.0  # below double range


def test_sweep_work_is_counted() -> None:
    text = models.kingman(8).to_json()
    before = _core.sweep_counts()["madds"]
    phasic.compute_log_pmf_ffi(text, jnp.array([1.0]), jnp.array([0.5, 2.0])).block_until_ready()
    assert _core.sweep_counts()["madds"] > before
