"""Epochs (piecewise-constant theta in time) against piecewise dense matrix formulas.

References, all independent of the composition in phasic.epoch_ffi:
- pdf / cdf: alpha e^{S_1 tau_1} e^{S_2 (tau_2 - tau_1)} ... e^{S_e (t - tau_{e-1})} s_e
  over the transient states (scipy expm, core_reference.piecewise_pdf/cdf);
- state probabilities and accumulated times: products of per-epoch exponentials of
  [[G_e, I], [0, 0]] over all vertices (core_reference.piecewise_state);
- moments: a Van Loan block-matrix product in numpy for the bounded epochs and
  k! alpha (U R)^k 1 for the last one, and closed forms for n = 2 under one size change;
- the expected SFS: the lineage-count death process (piecewise expm) with the
  size-independent topology weights of Polanski and Kimmel;
- gradients: central finite differences.

The kernels the composition runs on (phasic.propagate_ffi) are themselves compared with
the dense JAX block-matrix versions of core_reference (same signatures).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from core_graphs import random_graph, with_defect
from core_reference import (
    dense,
    dense_propagate,
    dense_vertex_moments,
    finite_difference,
    piecewise_cdf,
    piecewise_pdf,
    piecewise_state,
)

import phasic
from phasic import epoch_ffi, models, propagate_ffi

TAU = np.array([0.4, 1.1])


def epoch_case(seed: int, cyclic: bool, defect: bool = False, n_epochs: int = 3):
    """A small random graph and an (E, P) theta with distinct rows."""
    if defect:
        g, theta = with_defect(seed, cyclic=cyclic, discrete=False)
    else:
        case = random_graph(seed, cyclic=cyclic, n_states=int(4 + seed % 5))
        g, theta = case.graph, case.theta
    rng = np.random.default_rng(seed + 100)
    thetas = theta[None, :] * rng.uniform(0.4, 2.5, size=(n_epochs, theta.shape[0]))
    return g, thetas


def grid(tau: np.ndarray) -> np.ndarray:
    eps = 1e-9
    near = np.concatenate([tau - eps, tau, tau + eps])
    return np.sort(np.concatenate([[0.0, 0.05, 0.3, 0.7, 1.5, 3.0, 4.5, 6.0], near]))


def assert_rel(got: np.ndarray, want: np.ndarray, rtol: float, floor: float = 1e-12) -> None:
    """|got - want| <= rtol |want| wherever |want| >= floor * max |want| (absolute below)."""
    got, want = np.asarray(got), np.asarray(want)
    scale = np.max(np.abs(want))
    tol = rtol * np.maximum(np.abs(want), floor * scale)
    assert np.all(np.abs(got - want) <= tol), np.max(np.abs(got - want) / np.maximum(tol, 1e-300))


@pytest.mark.parametrize("cyclic", [False, True])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_pdf_and_cdf_against_piecewise_expm(seed: int, cyclic: bool) -> None:
    g, thetas = epoch_case(seed, cyclic, defect=seed == 3)
    t = grid(TAU)
    pdf = phasic.compute_pmf_ffi(g, thetas, t, epochs=TAU)
    cdf = epoch_ffi.epoch_pdf(g, thetas, t, jnp.asarray(TAU), cumulative=True)
    assert pdf.shape == t.shape
    assert_rel(pdf, [piecewise_pdf(g, thetas, TAU, x) for x in t], 1e-8)
    assert_rel(cdf, [piecewise_cdf(g, thetas, TAU, x) for x in t], 1e-8)
    # a 2-D times array keeps its shape
    pdf2 = phasic.compute_pmf_ffi(g, thetas, t.reshape(2, -1), epochs=TAU)
    np.testing.assert_array_equal(np.asarray(pdf2).reshape(-1), np.asarray(pdf))


def test_pdf_is_continuous_in_time_and_jumps_in_slope_only() -> None:
    """Just before and after a breakpoint: the cdf is continuous, the pdf jumps with the rates."""
    g, thetas = epoch_case(4, True)
    eps = 1e-10
    t = np.array([TAU[0] - eps, TAU[0] + eps])
    cdf = epoch_ffi.epoch_pdf(g, thetas, t, jnp.asarray(TAU), cumulative=True)
    assert abs(cdf[1] - cdf[0]) < 1e-9
    pdf = phasic.compute_pmf_ffi(g, thetas, t, epochs=TAU)
    assert_rel(pdf, [piecewise_pdf(g, thetas, TAU, x) for x in t], 1e-8)


@pytest.mark.parametrize("cyclic", [False, True])
def test_state_probabilities_and_accumulated_time(cyclic: bool) -> None:
    g, thetas = epoch_case(5, cyclic, defect=True)
    t = grid(TAU)
    prob = phasic.compute_state_probabilities_ffi(g, thetas, t, epochs=TAU)
    acc = phasic.compute_accumulated_visiting_time_ffi(g, thetas, t, epochs=TAU)
    ref = [piecewise_state(g, thetas, TAU, x) for x in t]
    absorbing = np.array([not v.edges() for v in g.vertices()])
    absorbing[0] = False
    transient = ~absorbing
    transient[0] = False
    for i in range(len(t)):
        np.testing.assert_allclose(prob[i], ref[i][0], rtol=1e-8, atol=1e-14)
        np.testing.assert_allclose(acc[i], ref[i][1] * transient, rtol=1e-8, atol=1e-14)
    np.testing.assert_allclose(np.asarray(prob).sum(axis=1), 1.0, rtol=1e-12)
    # a scalar time gives one row
    one = phasic.compute_state_probabilities_ffi(g, thetas, 0.7, epochs=TAU)
    np.testing.assert_allclose(one, ref[list(t).index(0.7)][0], rtol=1e-8, atol=1e-14)


def test_one_epoch_is_bit_identical_to_the_homogeneous_path() -> None:
    g, thetas = epoch_case(6, True)
    theta = thetas[0]
    t = grid(TAU)
    r = np.arange(g.vertices_length(), dtype=float)
    for empty in (None, [], np.zeros(0)):
        for th in (theta, theta[None, :]) if empty is not None else (theta,):
            pairs = [
                (phasic.compute_pmf_ffi(g, theta, t), phasic.compute_pmf_ffi(g, th, t, epochs=empty)),
                (phasic.compute_log_pmf_ffi(g, theta, t),
                 phasic.compute_log_pmf_ffi(g, th, t, epochs=empty)),
                (phasic.compute_moments_ffi(g, theta, 3, rewards=r),
                 phasic.compute_moments_ffi(g, th, 3, rewards=r, epochs=empty)),
                (phasic.compute_state_probabilities_ffi(g, theta, t),
                 phasic.compute_state_probabilities_ffi(g, th, t, epochs=empty)),
                (phasic.compute_accumulated_visiting_time_ffi(g, theta, t),
                 phasic.compute_accumulated_visiting_time_ffi(g, th, t, epochs=empty)),
                (phasic.loglik(g, theta, t[1:]), phasic.loglik(g, th, t[1:], epochs=empty)),
            ]
            pairs += list(zip(phasic.compute_pmf_and_moments_ffi(g, theta, t, 2),
                              phasic.compute_pmf_and_moments_ffi(g, th, t, 2, epochs=empty),
                              strict=True))
            for want, got in pairs:
                np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_identical_rows_equal_the_homogeneous_chain() -> None:
    g, thetas = epoch_case(7, True)
    same = np.repeat(thetas[:1], 3, axis=0)
    t = grid(TAU)
    r = np.linspace(0.0, 2.0, g.vertices_length())
    np.testing.assert_allclose(phasic.compute_pmf_ffi(g, same, t, epochs=TAU),
                               phasic.compute_pmf_ffi(g, same[0], t), rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(phasic.compute_moments_ffi(g, same, 3, rewards=r, epochs=TAU),
                               phasic.compute_moments_ffi(g, same[0], 3, rewards=r), rtol=1e-9)
    np.testing.assert_allclose(phasic.compute_moments_ffi(g, same, 2, epochs=TAU),
                               phasic.compute_moments_ffi(g, same[0], 2), rtol=1e-9)
    np.testing.assert_allclose(
        phasic.compute_accumulated_visiting_time_ffi(g, same, t, epochs=TAU),
        phasic.compute_accumulated_visiting_time_ffi(g, same[0], t), rtol=1e-9, atol=1e-15)


# -- moments -----------------------------------------------------------------------------


def dense_epoch_moments(g, thetas, tau, k: int, rewards=None) -> np.ndarray:
    """E[Y^i], i = 1..k, by Van Loan blocks in numpy.

    Over the bounded epochs, layer j of [[S, R, 0, ..], [0, S, R, ..], ..] is
    E[Y_t^j / j!; X_t = v] over the transient states plus one collecting absorbing
    state (reward 0); after the last breakpoint a state v adds E[Y^i | v] / i! =
    ((U R)^i 1)_v of the last epoch's chain (0 for i >= 1 once absorbed)."""
    bounds = [0.0, *np.asarray(tau, dtype=float).tolist()]
    d0 = dense(g, thetas[0])
    n = len(d0.transient)
    r = np.ones(n) if rewards is None else np.asarray(rewards, float)[d0.transient]
    rr = np.concatenate([r, [0.0]])
    m = n + 1
    layers = np.zeros((k + 1, m))
    layers[0, :n] = d0.alpha
    for e in range(len(bounds) - 1):
        d = dense(g, thetas[e])
        s = np.zeros((m, m))
        s[:n, :n] = d.T
        s[:n, n] = d.exit
        big = np.zeros(((k + 1) * m, (k + 1) * m))
        for j in range(k + 1):
            big[j * m:(j + 1) * m, j * m:(j + 1) * m] = s
            if j:
                big[(j - 1) * m:j * m, j * m:(j + 1) * m] = np.diag(rr)
        layers = (layers.reshape(-1) @ scipy.linalg.expm(big * (bounds[e + 1] - bounds[e]))
                  ).reshape(k + 1, m)
    ur = np.linalg.inv(-dense(g, thetas[-1]).T) * r[None, :]
    tail = [np.ones(m)]
    for _ in range(k):
        tail.append(np.concatenate([ur @ tail[-1][:n], [0.0]]))
    return np.array([math.factorial(i) * sum(layers[j] @ tail[i - j] for j in range(i + 1))
                     for i in range(1, k + 1)])


@pytest.mark.parametrize("with_rewards", [False, True])
@pytest.mark.parametrize("cyclic", [False, True])
def test_moments_against_dense_blocks(cyclic: bool, with_rewards: bool) -> None:
    g, thetas = epoch_case(8, cyclic, defect=cyclic)
    rng = np.random.default_rng(3)
    r = rng.uniform(0.0, 2.0, g.vertices_length()) if with_rewards else None
    got = phasic.compute_moments_ffi(g, thetas, 2, rewards=r, epochs=TAU)
    want = dense_epoch_moments(g, thetas, TAU, 2, r)
    np.testing.assert_allclose(got, want, rtol=1e-9)


def test_mean_against_the_survival_integral() -> None:
    """E[T] = integral of P(T > t): per epoch alpha_e S^{-1}(e^{S L} - I) 1, -alpha_E S^{-1} 1."""
    g, thetas = epoch_case(9, True)
    bounds = [0.0, *TAU.tolist()]
    alpha = dense(g, thetas[0]).alpha
    total = 0.0
    for e in range(len(thetas)):
        s = dense(g, thetas[e]).T
        one = np.ones(len(alpha))
        if e == len(thetas) - 1:
            total += alpha @ np.linalg.solve(-s, one)
        else:
            span = bounds[e + 1] - bounds[e]
            step = scipy.linalg.expm(s * span)
            total += alpha @ np.linalg.solve(s, (step - np.eye(len(alpha))) @ one)
            alpha = alpha @ step
    np.testing.assert_allclose(phasic.compute_moments_ffi(g, thetas, 1, epochs=TAU)[0], total,
                               rtol=1e-10)


@pytest.mark.parametrize(("tau", "nu"), [(0.3, 4.0), (1.5, 0.2), (2.0, 1.0)])
def test_two_samples_one_size_change_closed_form(tau: float, nu: float) -> None:
    """T_2 ~ Exp(1) before tau, rate 1/nu after: E[T] = (1 - e^-tau) + e^-tau nu and
    E[T^2] = 2 - e^-tau (tau^2 + 2 tau + 2) + e^-tau (tau^2 + 2 tau nu + 2 nu^2)."""
    history = models.SizeHistory([1.0, nu], [tau])
    np.testing.assert_array_equal(history.theta(), [[1.0], [1.0 / nu]])
    g = models.kingman(2)
    m = phasic.compute_moments_ffi(g, history.theta(), 2, epochs=history.times)
    q = math.exp(-tau)
    mean = (1 - q) + q * nu
    second = 2 - q * (tau**2 + 2 * tau + 2) + q * (tau**2 + 2 * tau * nu + 2 * nu**2)
    np.testing.assert_allclose(m, [mean, second], rtol=1e-12)
    # the SFS of two samples is one class of total length 2 T
    np.testing.assert_allclose(models.expected_sfs(2, history), [2 * mean], rtol=1e-12)
    # and the gradient: E = (1 - e^{-tau a}) / a + e^{-tau a} / b for rates a, b = 1 / nu
    a, b = 1.0, 1.0 / nu
    d_theta, d_tau = jax.grad(
        lambda th, tt: phasic.compute_moments_ffi(g, th, 1, epochs=tt)[0], argnums=(0, 1))(
        jnp.asarray(history.theta()), jnp.asarray([tau]))
    want_theta = [-(1 - q) / a**2 + tau * q / a - tau * q / b, -q / b**2]
    np.testing.assert_allclose(d_theta[:, 0], want_theta, rtol=1e-10)
    np.testing.assert_allclose(d_tau, [q * (1 - a / b)], rtol=1e-10, atol=1e-15)


def lineage_count_sfs(n: int, sizes, times) -> np.ndarray:
    """E[L_i] from the k-lineage death process (rate C(k, 2)/size) and the topology weights
    P(a branch among k lineages subtends i of n) = C(n-i-1, k-2) / C(n-1, k-1)."""
    ks = np.arange(n, 1, -1)  # states n, n-1, ..., 2 (1 lineage absorbs)
    bounds = [0.0, *list(times)]
    alpha = np.zeros(len(ks))
    alpha[0] = 1.0
    occupancy = np.zeros(len(ks))  # E[T_k]: time spent with k lineages
    for e, size in enumerate(sizes):
        s = np.zeros((len(ks), len(ks)))
        for a, k in enumerate(ks):
            rate = k * (k - 1) / 2 / size
            s[a, a] = -rate
            if a + 1 < len(ks):
                s[a, a + 1] = rate
        if e == len(sizes) - 1:
            occupancy += np.linalg.solve(-s.T, alpha)
        else:
            span = bounds[e + 1] - bounds[e]
            big = np.zeros((2 * len(ks), 2 * len(ks)))
            big[:len(ks), :len(ks)] = s
            big[:len(ks), len(ks):] = np.eye(len(ks))
            row = np.concatenate([alpha, np.zeros(len(ks))]) @ scipy.linalg.expm(big * span)
            alpha, occupancy = row[:len(ks)], occupancy + row[len(ks):]
    out = np.zeros(n - 1)
    for i in range(1, n):
        for a, k in enumerate(ks):
            weight = math.comb(n - i - 1, k - 2) / math.comb(n - 1, k - 1)
            out[i - 1] += occupancy[a] * k * weight
    return out


@pytest.mark.parametrize(("sizes", "times"), [([1.0, 0.1, 3.0], [0.2, 0.9]),
                                               ([2.0, 0.5], [0.05]),
                                               ([1.0], [])])
def test_expected_sfs_against_the_lineage_count_process(sizes, times) -> None:
    n = 6
    got = models.expected_sfs(n, models.SizeHistory(sizes, times))
    np.testing.assert_allclose(got, lineage_count_sfs(n, sizes, times), rtol=1e-10)
    if len(sizes) == 1:  # constant size s: E[L_i] = 2 s / i
        np.testing.assert_allclose(got, [2 * sizes[0] / i for i in range(1, n)], rtol=1e-12)


def test_expected_sfs_against_msprime() -> None:
    """msprime's mean branch-length spectrum (haploid, so a pair coalesces at rate 1/size)
    over 8,000 seeded replicates: each class within 5 standard errors of the mean (for 5
    classes a chance failure has probability below 3e-6; the seed makes it repeatable)."""
    import msprime  # a test dependency of phasic-core (its `test` extra)
    sizes, times, n = [1.0, 0.1, 1.0], [0.2, 0.3], 6
    demography = msprime.Demography()
    demography.add_population(name="pop", initial_size=sizes[0])
    for size, time in zip(sizes[1:], times, strict=True):
        demography.add_population_parameters_change(time=time, initial_size=size,
                                                    population="pop")
    replicates = msprime.sim_ancestry(samples=n, ploidy=1, demography=demography,
                                      num_replicates=8_000, random_seed=5)
    lengths = np.array([ts.allele_frequency_spectrum(mode="branch", polarised=True,
                                                     span_normalise=True)[1:-1]
                        for ts in replicates])
    mean = lengths.mean(axis=0)
    se = lengths.std(axis=0, ddof=1) / np.sqrt(len(lengths))
    expected = np.asarray(models.expected_sfs(n, models.SizeHistory(sizes, times)))
    assert np.all(np.abs(mean - expected) <= 5 * se), (mean, expected, se)


def test_size_history_bad_input() -> None:
    with pytest.raises(ValueError, match=r"sizes\[1\] is 0.0"):
        models.SizeHistory([1.0, 0.0], [1.0])
    with pytest.raises(ValueError, match="sizes must be a non-empty 1-D"):
        models.SizeHistory([], [])
    with pytest.raises(ValueError, match="times must be 1-D with one breakpoint"):
        models.SizeHistory([1.0, 2.0], [])
    with pytest.raises(ValueError, match=r"times\[1\] = 0.5 after times\[0\] = 1.0"):
        models.SizeHistory([1.0, 2.0, 3.0], [1.0, 0.5])
    with pytest.raises(ValueError, match=r"times\[0\] is nan"):
        models.SizeHistory([1.0, 2.0], [math.nan])
    with pytest.raises(TypeError, match="history must be a phasic.models.SizeHistory"):
        models.expected_sfs(4, [1.0])


# -- gradients, jit, vmap ------------------------------------------------------------------


GRAD_TIMES = np.array([0.2, 0.45, 0.9, 1.1 + 1e-3, 2.5])  # none on a breakpoint (a jump)
GRAD_FUNCTIONS = {
    "pdf": lambda g, th, tau, r: phasic.compute_pmf_ffi(g, th, GRAD_TIMES, epochs=tau),
    "moments with rewards": lambda g, th, tau, r: phasic.compute_moments_ffi(
        g, th, 2, rewards=r, epochs=tau),
    "moments": lambda g, th, tau, r: phasic.compute_moments_ffi(g, th, 2, epochs=tau),
    "state probabilities": lambda g, th, tau, r: phasic.compute_state_probabilities_ffi(
        g, th, GRAD_TIMES[2], epochs=tau),
    "accumulated time": lambda g, th, tau, r: phasic.compute_accumulated_visiting_time_ffi(
        g, th, GRAD_TIMES[3], epochs=tau),
    "loglik": lambda g, th, tau, r: phasic.loglik(g, th, GRAD_TIMES, epochs=tau)[None],
}


@pytest.mark.parametrize("name", list(GRAD_FUNCTIONS))
def test_gradients_in_every_theta_row_and_breakpoint(name: str) -> None:
    """Forward mode against central differences (h = 1e-6 relative: truncation ~1e-12,
    rounding ~1e-10 of the values), reverse mode against forward mode."""
    g, thetas = epoch_case(10, True)
    r = np.linspace(0.5, 1.5, g.vertices_length())
    f = GRAD_FUNCTIONS[name]

    def flat(x):
        return f(g, x[:thetas.size].reshape(thetas.shape), x[thetas.size:], r)

    x = np.concatenate([thetas.ravel(), TAU])
    jac = np.asarray(jax.jacfwd(flat)(jnp.asarray(x)))
    compiled = jax.jit(flat)  # one compile for the 2 (3 P + 2) evaluations
    fd = finite_difference(lambda y: np.asarray(compiled(jnp.asarray(y))), x, h=1e-6)
    scale = np.maximum(np.abs(fd), 1e-3)
    assert np.all(np.abs(jac - fd) <= 1e-6 * scale), np.max(np.abs(jac - fd) / scale)
    if name in ("loglik", "moments with rewards"):
        rev = np.asarray(jax.jacrev(flat)(jnp.asarray(x)))
        np.testing.assert_allclose(rev, jac, rtol=1e-10, atol=1e-14)


def test_jit_vmap_and_traced_breakpoints() -> None:
    g, thetas = epoch_case(11, False)
    t = jnp.asarray(grid(TAU))
    f = jax.jit(lambda th, tau: phasic.compute_pmf_ffi(g, th, t, epochs=tau))
    np.testing.assert_allclose(f(thetas, TAU), phasic.compute_pmf_ffi(g, thetas, t, epochs=TAU),
                               rtol=1e-13)
    batch = jnp.stack([thetas, 1.3 * thetas, 0.7 * thetas])
    taus = jnp.stack([TAU, TAU * 0.5, TAU + 0.2])
    got = jax.vmap(f)(batch, taus)
    for i in range(3):
        np.testing.assert_allclose(got[i], phasic.compute_pmf_ffi(g, batch[i], t, epochs=taus[i]),
                                   rtol=1e-13)
    m = jax.jit(jax.vmap(lambda th: phasic.compute_moments_ffi(g, th, 2, epochs=TAU)))(batch)
    for i in range(3):
        np.testing.assert_allclose(m[i], phasic.compute_moments_ffi(g, batch[i], 2, epochs=TAU),
                                   rtol=1e-13)
    value, grad = jax.jit(jax.value_and_grad(
        lambda th, tau: phasic.loglik(g, th, t[1:], epochs=tau), argnums=(0, 1)))(thetas, TAU)
    assert np.isfinite(value) and np.all(np.isfinite(grad[0])) and np.all(np.isfinite(grad[1]))


def test_expected_sfs_is_differentiable_in_sizes_and_times() -> None:
    def total(x):
        return jnp.sum(models.expected_sfs(4, models.SizeHistory(x[:2], x[2:])))

    x = np.array([1.0, 0.3, 0.6])
    fd = finite_difference(lambda y: np.asarray(total(jnp.asarray(y))), x, h=1e-6)
    np.testing.assert_allclose(jax.grad(total)(jnp.asarray(x)), fd, rtol=1e-6)


# -- graph methods ----------------------------------------------------------------------------


def test_graph_methods_take_epochs() -> None:
    g, thetas = epoch_case(12, True)
    t = np.array([0.1, 0.5, 2.0])
    np.testing.assert_allclose(g.pdf(t, theta=thetas, epochs=TAU),
                               phasic.compute_pmf_ffi(g, thetas, t, epochs=TAU), rtol=1e-14)
    np.testing.assert_allclose(g.cdf(t, theta=thetas, epochs=TAU),
                               [piecewise_cdf(g, thetas, TAU, x) for x in t], rtol=1e-9)
    m = phasic.compute_moments_ffi(g, thetas, 2, epochs=TAU)
    np.testing.assert_allclose(g.moments(2, theta=thetas, epochs=TAU), m, rtol=1e-14)
    assert g.expectation(theta=thetas, epochs=TAU) == pytest.approx(float(m[0]), rel=1e-14)
    assert g.variance(theta=thetas, epochs=TAU) == pytest.approx(float(m[1] - m[0] ** 2),
                                                                 rel=1e-12)
    np.testing.assert_allclose(
        g.state_probabilities(t, theta=thetas, epochs=TAU),
        phasic.compute_state_probabilities_ffi(g, thetas, t, epochs=TAU), rtol=1e-14)
    np.testing.assert_allclose(
        g.accumulated_visiting_time(t, theta=thetas, epochs=TAU),
        phasic.compute_accumulated_visiting_time_ffi(g, thetas, t, epochs=TAU), rtol=1e-14)
    assert isinstance(g.pdf(0.5, theta=thetas, epochs=TAU), float)
    # without epochs the methods are today's
    assert g.pdf(0.5, theta=thetas[0]) == g.pdf(0.5, theta=thetas[0], epochs=None)
    with pytest.raises(ValueError, match="epochs= needs theta="):
        g.pdf(0.5, epochs=TAU)


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("tau", "message"), [
    ([1.0, 0.5], r"epochs\[1\] = 0.5 after epochs\[0\] = 1.0 is not increasing"),
    ([0.5, 0.5], r"epochs\[1\] = 0.5 after epochs\[0\] = 0.5 is a duplicate"),
    ([-1.0, 0.5], r"epochs\[0\] is -1.0; breakpoints must be > 0"),
    ([0.0, 0.5], r"epochs\[0\] is 0.0; breakpoints must be > 0"),
    ([0.5, math.nan], r"epochs\[1\] is nan; breakpoints must be finite"),
    ([0.5, math.inf], r"epochs\[1\] is inf; breakpoints must be finite"),
    ([[0.5, 1.0]], r"epochs must be a 1-D array"),
])
def test_bad_breakpoints(tau, message) -> None:
    g, thetas = epoch_case(13, True)
    with pytest.raises(ValueError, match=message):
        phasic.compute_pmf_ffi(g, thetas, [0.5], epochs=tau)
    with pytest.raises(ValueError, match=message):
        phasic.compute_moments_ffi(g, thetas, 1, epochs=tau)


def test_bad_theta_times_and_unsupported_cases() -> None:
    g, thetas = epoch_case(14, True)
    p = thetas.shape[1]
    with pytest.raises(ValueError, match=rf"theta must have shape \(3, {p}\): one row"):
        phasic.compute_pmf_ffi(g, thetas[:2], [0.5], epochs=TAU)
    with pytest.raises(ValueError, match=rf"theta must have shape \(3, {p}\)"):
        phasic.compute_moments_ffi(g, thetas[0], 1, epochs=TAU)
    bad = thetas.copy()
    bad[1, 0] = np.nan
    with pytest.raises(ValueError, match=r"theta\[1, 0\] is nan"):
        phasic.compute_pmf_ffi(g, bad, [0.5], epochs=TAU)
    with pytest.raises(ValueError, match=r"times\[1\] \(flattened\) is -1.0"):
        phasic.compute_pmf_ffi(g, thetas, [0.5, -1.0], epochs=TAU)
    with pytest.raises(ValueError, match="reward-weighted time is not supported with epochs"):
        phasic.compute_pmf_ffi(g, thetas, [0.5], rewards=np.ones(g.vertices_length()),
                               epochs=TAU)
    # under jit only shapes are checked
    with pytest.raises(ValueError, match=r"theta must have shape \(3,"):
        jax.jit(lambda tau: phasic.compute_pmf_ffi(g, thetas[:2], [0.5], epochs=tau))(TAU)
    with pytest.raises(ValueError, match="epochs must be a 1-D array"):
        jax.jit(lambda tau: phasic.compute_pmf_ffi(g, thetas, [0.5], epochs=tau))(TAU[None])


def test_discrete_graphs_with_epochs_are_refused() -> None:
    case = random_graph(15, cyclic=True, discrete=True, n_states=5, n_params=2)
    g = case.graph
    thetas = np.stack([case.theta, case.theta])
    tau = [2.0]
    for call in (
        lambda: phasic.compute_pmf_ffi(g, thetas, [1.0], discrete=True, epochs=tau),
        lambda: phasic.compute_moments_ffi(g, thetas, 1, epochs=tau),
        lambda: phasic.compute_state_probabilities_ffi(g, thetas, [1.0], epochs=tau),
        lambda: phasic.loglik(g, thetas, [1.0], discrete=True, epochs=tau),
    ):
        with pytest.raises(ValueError, match="discrete graphs are not supported yet"):
            call()
    # the pmf of a discrete graph without epochs is unchanged
    np.testing.assert_array_equal(phasic.compute_pmf_ffi(g, case.theta, [1.0, 2.0], discrete=True),
                                  phasic.compute_pmf_ffi(g, case.theta, [1.0, 2.0], discrete=True,
                                                         epochs=None))


def test_the_kernels_match_the_dense_block_matrices() -> None:
    """propagate (three reward layers) and vertex_moments against core_reference's dense
    JAX versions, and one layer against the scipy piecewise reference."""
    g, thetas = epoch_case(16, True, defect=True)
    text = g.to_json()
    theta = jnp.asarray(thetas[0])
    t = jnp.asarray([0.0, 0.3, 1.7])
    v = g.vertices_length()
    rng = np.random.default_rng(16)
    start = np.zeros((3, v))
    start[0] = piecewise_state(g, thetas[:1], [], 0.0)[0]
    start[1:, 1:] = rng.uniform(0.0, 0.2, size=(2, v - 1))  # any start, not only e_0 layers
    r = rng.uniform(0.0, 2.0, size=v)
    transient = np.array([bool(x.edges()) for x in g.vertices()])
    transient[0] = False
    r = r * transient  # the composition passes rewards that are 0 off the transient vertices
    got = propagate_ffi.propagate(text, theta, jnp.asarray(start), t, jnp.asarray(r))
    want = dense_propagate(text, theta, start, t, r)
    for a, b in zip(got[:2], want[:2], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(got[2], want[2] * transient, rtol=1e-9, atol=1e-14)
    x, _, acc = propagate_ffi.propagate(text, theta, jnp.asarray(start[:1]), t)
    for i, ti in enumerate(np.asarray(t)):
        prob, time = piecewise_state(g, thetas[:1], [], float(ti))
        np.testing.assert_allclose(x[i, 0], prob, rtol=1e-9, atol=1e-15)
        np.testing.assert_allclose(acc[i], time * transient, rtol=1e-9, atol=1e-15)
    # theta-Jacobians with three layers, also where one uniformized step empties the
    # transient vertices in value but not in derivative (Kingman n = 2: one transient state)
    two = models.kingman(2)
    two_start = jnp.zeros((3, 3)).at[0, 1].set(1.0)
    for graph, th, st, rr in ((text, theta, jnp.asarray(start), jnp.asarray(r)),
                              (two.to_json(), jnp.asarray([1.3]), two_start, None)):
        for out in range(3):
            got_jac = jax.jacfwd(lambda y, graph=graph, st=st, rr=rr, out=out:
                                 propagate_ffi.propagate(graph, y, st, t, rr)[out])(th)
            want_jac = jax.jacfwd(lambda y, graph=graph, st=st, rr=rr, out=out:
                                  dense_propagate(graph, y, st, t, rr)[out])(th)
            if out == 2:
                mask = np.asarray(epoch_ffi._absorbing(graph) == 0, float)
                mask[0] = 0.0
                want_jac = want_jac * mask[None, :, None]
            np.testing.assert_allclose(got_jac, want_jac, rtol=1e-9, atol=1e-13)
    for rewards in (None, jnp.asarray(r)):
        # column 0 (the start vertex: the moments from the initial distribution) is not
        # used by the composition, which never puts mass there
        np.testing.assert_allclose(propagate_ffi.vertex_moments(text, theta, 3, rewards)[:, 1:],
                                   dense_vertex_moments(text, theta, 3, rewards)[:, 1:],
                                   rtol=1e-10)
