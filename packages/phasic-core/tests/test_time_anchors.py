"""Many observed times through shared anchors (time_anchors.hpp), against exact values.

When a sweep serves many times per unit of its Poisson mean, the kernels sum them
through anchors: the series at mu_a = a delta shifted by m = 0..K steps, from which a
time mu_a + eps is a Horner sum times e^-eps (kept as a log). Small graphs build the
anchors from the sweep's vectors (K products by P), larger ones from its terms; the
two are compared here too (`_core.set_anchor_vectors(False)`). Their truncation is bounded like the
windows' (each served time within the sweep's stopping rule), so the documented bound
holds: log f within 1e-10 (the uniformized sweep's relative truncation) and
d log f within 2e-10 of its scale (the bounds of df and f added). Kingman's T_MRCA has
an exact density (phasic.reference, 40 digits); random graphs are checked against the
non-negative dense series of core_reference, and both against the per-time windows
(`_core.set_time_anchors(False)`), which the time-window suite checks in turn.
"""

from __future__ import annotations

import core_reference as ref
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from core_graphs import random_graph

import phasic
from phasic import _core, models
from phasic.reference import kingman_tmrca

jax.config.update("jax_enable_x64", True)

F_REL, DLOG_REL = 1e-10, 2e-10


def log_pdf_and_grad(text: str, theta: np.ndarray, times: np.ndarray):
    th, t = jnp.asarray(theta), jnp.asarray(times)
    logf = np.asarray(phasic.compute_log_pmf_ffi(text, th, t))
    dlogf = np.asarray(jax.jacfwd(lambda x: phasic.compute_log_pmf_ffi(text, x, t))(th))
    return logf, dlogf


def anchored(fn):
    """fn() and how many times the anchors served during it."""
    before = _core.sweep_counts()["anchored"]
    out = fn()
    return out, _core.sweep_counts()["anchored"] - before


def switched_off(setter, fn):
    """fn() with a diagnostic switch of _core off, on again afterwards."""
    try:
        setter(False)
        return fn()
    finally:
        setter(True)


def without_anchors(fn):
    return switched_off(_core.set_time_anchors, fn)


def from_terms(fn):
    """fn() with every anchor built from the sweep's terms (none from its vectors)."""
    return switched_off(_core.set_anchor_vectors, fn)


def kingman_times(n: int, count: int, seed: int) -> np.ndarray:
    k = np.arange(2, n + 1)
    rng = np.random.default_rng(seed)
    return rng.exponential(2.0 / (k * (k - 1)), size=(count, k.size)).sum(axis=1)


@pytest.mark.parametrize("n", [5, 10, 20])
def test_kingman_many_times_match_the_exact_density(n: int) -> None:
    """n = 5 runs one sweep at the largest rate, n = 10 and 20 the piecewise sweep."""
    text = models.kingman(n).to_json()
    times = kingman_times(n, 4000, seed=n)
    theta = np.array([1.0])
    (logf, dlogf), served = anchored(lambda: log_pdf_and_grad(text, theta, times))
    assert served >= 0.75 * 2 * times.size  # the value and the jacfwd calls: most anchored
    pick = np.random.default_rng(1).choice(times.size, 150, replace=False)
    exact = kingman_tmrca(n, times[pick], digits=40)
    f_ex = exact.pdf
    g_ex = 1.0 + times[pick] * exact.slope / exact.pdf  # d log f / d theta at theta = 1
    assert np.max(np.abs(np.exp(logf[pick]) - f_ex) / f_ex) <= F_REL
    assert np.max(np.abs(dlogf[pick, 0] - g_ex) / np.maximum(np.abs(g_ex), 1.0)) <= DLOG_REL


@pytest.mark.parametrize("theta", [0.4, 2.5])
def test_kingman_anchors_agree_with_the_windows(theta: float) -> None:
    text = models.kingman(8).to_json()
    times = np.concatenate([kingman_times(8, 3000, seed=3) / theta, [0.0, 0.0, 1e-12]])
    th = np.array([theta])
    (new, served) = anchored(lambda: log_pdf_and_grad(text, th, times))
    old = without_anchors(lambda: log_pdf_and_grad(text, th, times))
    assert served > 0
    np.testing.assert_array_equal(new[0][-3:], [-np.inf, -np.inf, old[0][-1]])  # f(0) = 0
    fin = np.isfinite(old[0])
    assert np.max(np.abs(new[0][fin] - old[0][fin])) <= 2 * F_REL
    scale = np.maximum(np.abs(old[1]), 1.0 / theta)
    assert np.max(np.abs(new[1] - old[1]) / scale) <= 2 * DLOG_REL


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("cyclic", [False, True])
def test_random_graphs_many_times(seed: int, cyclic: bool) -> None:
    case = random_graph(900 + seed, cyclic=cyclic)
    text = case.graph.to_json()
    mean = float(case.graph.moments(1, theta=case.theta)[0])
    rng = np.random.default_rng(seed)
    # dense times with zeros, repeats and a far tail (densities far below the mode's)
    times = np.concatenate([rng.exponential(mean, 2500), rng.uniform(10, 30, 300) * mean,
                            [0.0, 0.0, mean, mean]])
    rng.shuffle(times)
    (new, served) = anchored(lambda: log_pdf_and_grad(text, case.theta, times))
    old = without_anchors(lambda: log_pdf_and_grad(text, case.theta, times))
    assert served > 0
    fin = np.isfinite(old[0])
    np.testing.assert_array_equal(np.isfinite(new[0]), fin)
    assert np.max(np.abs(new[0][fin] - old[0][fin]), initial=0.0) <= 2 * F_REL
    scale = np.maximum(np.max(np.abs(old[1]), axis=-1, keepdims=True), 1.0)
    assert np.max(np.abs(new[1] - old[1]) / scale) <= 2 * DLOG_REL
    pick = rng.choice(times.size, 40, replace=False)
    f_ref = ref.pdf(text, case.theta, times[pick])
    pos = f_ref > 0
    assert np.max(np.abs(np.exp(new[0][pick][pos]) - f_ref[pos]) / f_ref[pos]) <= 1e-9


def test_plain_pdf_many_times() -> None:
    """The density alone (no derivatives) takes the anchors too."""
    text = models.kingman(12).to_json()
    times = kingman_times(12, 4000, seed=4)
    f, served = anchored(lambda: np.asarray(
        phasic.compute_pmf_ffi(text, jnp.array([1.0]), jnp.asarray(times))))
    old = without_anchors(lambda: np.asarray(
        phasic.compute_pmf_ffi(text, jnp.array([1.0]), jnp.asarray(times))))
    assert served > 0
    assert np.all(np.abs(f - old) <= 2 * F_REL * old + 2e-21 * old.max())


def test_anchored_sums_do_not_depend_on_threads_or_batching() -> None:
    """The same bits on 1 and 2 threads, and in a vmapped batch as one theta at a time."""
    text = models.kingman(10).to_json()
    times = jnp.asarray(kingman_times(10, 3000, seed=5))
    thetas = jnp.array([[0.5], [1.0], [1.7], [3.0]])

    def per_time(th):
        return phasic.compute_log_pmf_ffi(text, th, times)

    fn = jax.jit(jax.vmap(lambda th: (per_time(th), jax.jacfwd(per_time)(th))))
    threads = _core.get_num_threads()
    try:
        _core.set_num_threads(1)
        one = [np.asarray(x) for x in fn(thetas)]
        _core.set_num_threads(2)
        two = [np.asarray(x) for x in fn(thetas)]
    finally:
        _core.set_num_threads(threads)
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a, b)
    for i in range(4):
        np.testing.assert_array_equal(one[0][i], np.asarray(per_time(thetas[i])))
        np.testing.assert_array_equal(one[1][i], np.asarray(jax.jacfwd(per_time)(thetas[i])))


@pytest.mark.parametrize("seed", range(4))
def test_anchors_from_vectors_agree_with_anchors_from_terms(seed: int) -> None:
    """Both builds sum the same window (x_a = sum Pois(n) v_n, then x_a P^m s, against
    sum Pois(n) c_(n+m)): they agree to rounding, and both with the exact density."""
    n = 6 + seed
    text = models.kingman(n).to_json()
    times = kingman_times(n, 3000, seed=10 + seed) * (0.5 + seed / 2)
    theta = np.array([1.0 / (0.5 + seed / 2)])
    (vec, served) = anchored(lambda: log_pdf_and_grad(text, theta, times))
    (terms, served_terms) = anchored(lambda: from_terms(
        lambda: log_pdf_and_grad(text, theta, times)))
    assert served > 0 and served_terms > 0
    fin = np.isfinite(terms[0])
    np.testing.assert_array_equal(np.isfinite(vec[0]), fin)
    # the two sums differ only in their roundings (1e-15 each) and where a time's own
    # window served it in one build and an anchor in the other (each within F_REL)
    assert np.max(np.abs(vec[0][fin] - terms[0][fin])) <= 2 * F_REL
    scale = np.maximum(np.abs(terms[1]), 1.0)
    assert np.max(np.abs(vec[1] - terms[1]) / scale) <= 2 * DLOG_REL
    pick = np.random.default_rng(seed).choice(times.size, 60, replace=False)
    t = times[pick] * theta[0]  # f_theta(t) = theta f_1(theta t)
    exact = kingman_tmrca(n, t, digits=40)
    f_ex = theta[0] * exact.pdf
    assert np.max(np.abs(np.exp(vec[0][pick]) - f_ex) / f_ex) <= F_REL
