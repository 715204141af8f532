"""The distribution of a reward-weighted time: compute_pmf_ffi / compute_log_pmf_ffi /
loglik with rewards, and upstream's compute_pmf_multivariate_ffi.

The references never call the kernel's elimination. Continuous graphs: the
transformed sub-intensity matrix in rate form, S' = diag(1/r_K) (S_KK + S_KZ (-S_ZZ)^-1
S_ZK) and alpha' = alpha_K + alpha_Z (-S_ZZ)^-1 S_ZK, evaluated with scipy's expm.
Discrete graphs: the explicitly expanded DPH matrix (a vertex with reward k becomes a
chain of k states) after eliminating the zero-reward block of P. Kingman's total
branch length has the closed-form CDF (1 - e^(-theta x / 2))^(n-1).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.linalg
from core_graphs import random_graph
from core_reference import dense

import phasic
from phasic import models
from phasic.ffi_wrappers import compute_pmf_multivariate_ffi

# ------------------------------------------------------------------ references


def reduced_continuous(g, theta, rewards):
    """(alpha', S', s') of Y for a continuous graph, in rate form."""
    d = dense(g, theta)
    r = np.asarray(rewards, dtype=float)[d.transient]
    k, z = r > 0, r == 0
    S = d.T
    alpha = d.alpha[k].copy()
    skk = S[np.ix_(k, k)].copy()
    exit_ = d.exit[k].copy()  # exit rates directly, not -S'1 (no cancellation)
    if z.any():
        inv = np.linalg.inv(-S[np.ix_(z, z)])
        skk += S[np.ix_(k, z)] @ inv @ S[np.ix_(z, k)]
        exit_ += S[np.ix_(k, z)] @ inv @ d.exit[z]
        alpha += d.alpha[z] @ inv @ S[np.ix_(z, k)]
    return alpha, skk / r[k][:, None], exit_ / r[k]


def reference_pdf(g, theta, rewards, ys) -> np.ndarray:
    alpha, S, s = reduced_continuous(g, theta, rewards)
    return np.array([alpha @ scipy.linalg.expm(S * y) @ s for y in ys])


def expanded_discrete(g, theta, rewards):
    """(alpha, M, exit) of the expanded DPH whose absorption time is Y, and its atom."""
    d = dense(g, theta)
    r = np.asarray(rewards, dtype=float)[d.transient].astype(int)
    k, z = r > 0, r == 0
    P = d.T
    pkk = P[np.ix_(k, k)].copy()
    alpha = d.alpha[k].copy()
    exit_k = d.exit[k].copy()  # exit probabilities directly, not 1 - row sums
    if z.any():
        inv = np.linalg.inv(np.eye(z.sum()) - P[np.ix_(z, z)])
        pkk += P[np.ix_(k, z)] @ inv @ P[np.ix_(z, k)]
        exit_k += P[np.ix_(k, z)] @ inv @ d.exit[z]
        alpha += d.alpha[z] @ inv @ P[np.ix_(z, k)]
    sizes = r[k]
    first = np.concatenate([[0], np.cumsum(sizes)])
    m = int(first[-1])
    M = np.zeros((m, m))
    a = np.zeros(m)
    exit_ = np.zeros(m)
    for i, size in enumerate(sizes):
        a[first[i]] = alpha[i]
        exit_[first[i] + size - 1] = exit_k[i]
        for c in range(size - 1):
            M[first[i] + c, first[i] + c + 1] = 1.0
        for j in range(len(sizes)):
            M[first[i] + size - 1, first[j]] += pkk[i, j]
    return a, M, exit_, 1.0 - alpha.sum()


def reference_pmf(g, theta, rewards, ys) -> np.ndarray:
    a, M, exit_, atom = expanded_discrete(g, theta, rewards)
    return np.array([atom if y == 0 else a @ np.linalg.matrix_power(M, int(y) - 1) @ exit_
                     for y in ys])


def kingman_length_pdf(n: int, theta: float, x: np.ndarray) -> np.ndarray:
    """d/dx (1 - e^(-theta x / 2))^(n-1): total branch length, pair rate theta."""
    e = np.exp(-theta * x / 2)
    return (n - 1) * (1 - e) ** (n - 2) * e * theta / 2


def total_length_rewards(g) -> np.ndarray:
    return g.states().sum(axis=1).astype(float)


def with_defect(seed, *, cyclic, discrete):
    case = random_graph(seed, cyclic=cyclic, discrete=discrete, n_states=12)
    g = case.graph
    if dense(g, case.theta).defect == 0.0:
        absorbing = [v for v in g.vertices()[1:] if not v.edges()]
        g.starting_vertex().add_edge(absorbing[0], 0.3)
    return g, case.theta


def random_rewards(seed: int, vertices: int, discrete: bool, zeros: bool) -> np.ndarray:
    rng = np.random.default_rng(seed + 77)
    r = rng.integers(1, 4, size=vertices).astype(float) if discrete else \
        rng.uniform(0.3, 3.0, size=vertices)
    if zeros:
        r[rng.random(vertices) < 0.35] = 0.0
        r[rng.integers(1, vertices)] = 0.0
    return r


def graph_and_rewards(seed: int, *, cyclic: bool, discrete: bool, zeros: bool):
    """A random graph with a defect and rewards leaving Y a continuous part of mass
    >= 0.2 (rewards re-drawn until then: an all-atom Y has no density to test)."""
    g, theta = with_defect(seed, cyclic=cyclic, discrete=discrete)
    for k in range(50):
        r = random_rewards(seed + 1000 * k, g.vertices_length(), discrete, zeros)
        atom = (expanded_discrete(g, theta, r)[3] if discrete
                else 1.0 - reduced_continuous(g, theta, r)[0].sum())
        if atom <= 0.8:
            return g, theta, r
    raise AssertionError("no rewards with a continuous part found")


def central_difference(f, theta: np.ndarray, h: float = 1e-5) -> np.ndarray:
    cols = []
    for p in range(len(theta)):
        up, dn = theta.copy(), theta.copy()
        up[p] += h
        dn[p] -= h
        cols.append((np.asarray(f(up)) - np.asarray(f(dn))) / (2 * h))
    return np.stack(cols, axis=-1)


CASES = [(seed, cyclic, zeros) for seed in (1, 2, 3) for cyclic in (False, True)
         for zeros in (False, True)]
YS = np.array([0.05, 0.4, 1.1, 2.5, 6.0])


# ------------------------------------------------------------------ values


@pytest.mark.parametrize("seed,cyclic,zeros", CASES)
def test_continuous_matches_dense_reference(seed, cyclic, zeros) -> None:
    g, theta, r = graph_and_rewards(seed, cyclic=cyclic, discrete=False, zeros=zeros)
    got = np.asarray(phasic.compute_pmf_ffi(g, theta, YS, rewards=r))
    want = reference_pdf(g, theta, r, YS)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-13 * want.max())
    logs = np.asarray(phasic.compute_log_pmf_ffi(g, theta, YS, rewards=r))
    with np.errstate(divide="ignore"):  # a density exactly 0 has log -inf on both sides
        np.testing.assert_allclose(logs, np.log(want), rtol=1e-9)


@pytest.mark.parametrize("seed,cyclic,zeros", CASES)
def test_discrete_matches_expanded_matrix(seed, cyclic, zeros) -> None:
    g, theta, r = graph_and_rewards(seed, cyclic=cyclic, discrete=True, zeros=zeros)
    ys = np.arange(0, 14, dtype=float)
    got = np.asarray(phasic.compute_pmf_ffi(g, theta, ys, discrete=True, rewards=r))
    want = reference_pmf(g, theta, r, ys)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-15)
    assert got[0] > 0.0  # the defect (and zero-reward paths) at Y = 0
    logs = np.asarray(phasic.compute_log_pmf_ffi(g, theta, ys, discrete=True, rewards=r))
    with np.errstate(divide="ignore"):  # a pmf exactly 0 has log -inf on both sides
        np.testing.assert_allclose(logs, np.log(want), rtol=1e-9)


def test_density_and_atom_account_for_all_mass() -> None:
    """Continuous: the density integrates to 1 - P(Y = 0); the atom is the reference's."""
    g, theta, r = graph_and_rewards(4, cyclic=True, discrete=False, zeros=True)
    alpha, S, _ = reduced_continuous(g, theta, r)
    atom = 1.0 - alpha.sum()
    assert atom > 0.0
    mean = float(-alpha @ np.linalg.inv(S) @ np.ones(len(alpha)))  # E[Y] as a check of scale
    ys = np.linspace(0.0, 60.0 * max(mean, 1.0), 20001)
    f = np.asarray(phasic.compute_pmf_ffi(g, theta, ys, rewards=r))
    integral = scipy.integrate.simpson(f, x=ys)
    assert abs(integral - (1.0 - atom)) < 1e-7


def test_kingman_total_branch_length_closed_form() -> None:
    for n in (3, 5, 8):
        g = models.kingman(n)
        r = total_length_rewards(g)
        x = np.array([0.1, 0.7, 2.0, 5.0, 12.0])
        for theta in (1.0, 2.5):
            got = np.asarray(phasic.compute_pmf_ffi(g, jnp.array([theta]), x, rewards=r))
            np.testing.assert_allclose(got, kingman_length_pdf(n, theta, x), rtol=1e-9)


def test_sfs_class_rewards_with_zeros() -> None:
    """Singleton branch length (zero in states without singletons) against the reference."""
    g = models.kingman(6)
    r = g.states()[:, 0].astype(float)
    assert (r[1:] == 0).sum() > 1
    x = np.array([0.2, 1.0, 3.0, 7.0])
    got = np.asarray(phasic.compute_pmf_ffi(g, jnp.array([1.3]), x, rewards=r))
    np.testing.assert_allclose(got, reference_pdf(g, np.array([1.3]), r, x), rtol=1e-9)


def test_reward_matrix_is_one_call_per_row() -> None:
    g, theta = with_defect(2, cyclic=True, discrete=False)
    rows = np.stack([random_rewards(s, g.vertices_length(), False, s % 2 == 0)
                     for s in range(4)])
    times = np.array([[0.3, 1.0], [2.0, 4.0]])
    got = np.asarray(phasic.compute_pmf_ffi(g, theta, times, rewards=rows))
    assert got.shape == (4, 2, 2)
    for i, r in enumerate(rows):
        want = reference_pdf(g, theta, r, times.reshape(-1)).reshape(times.shape)
        np.testing.assert_allclose(got[i], want, rtol=1e-9)
    thetas = np.stack([theta, theta * 1.5])
    per_theta = jax.vmap(lambda th: phasic.compute_pmf_ffi(g, th, times, rewards=rows))(thetas)
    assert per_theta.shape == (2, 4, 2, 2)
    np.testing.assert_array_equal(np.asarray(per_theta[0]), got)
    np.testing.assert_allclose(per_theta[1, 3], reference_pdf(g, thetas[1], rows[3], times.reshape(
        -1)).reshape(times.shape), rtol=1e-9)


def test_vmap_over_rewards_is_one_ffi_call() -> None:
    g = models.kingman(5)
    batch = np.stack([total_length_rewards(g) * c for c in (0.5, 1.0, 2.0)])
    times = jnp.array([0.5, 1.5, 4.0])

    def one(r):
        return phasic.compute_pmf_ffi(g, jnp.array([1.0]), times, rewards=r)

    jaxpr = str(jax.make_jaxpr(jax.vmap(one))(batch))
    assert jaxpr.count("phasic_reward_pmf") == 1
    got = np.asarray(jax.jit(jax.vmap(one))(batch))
    for i, c in enumerate((0.5, 1.0, 2.0)):
        # Y scaled by c: density (1/c) f(x / c)
        np.testing.assert_allclose(got[i], kingman_length_pdf(5, 1.0, np.asarray(times) / c) / c,
                                   rtol=1e-9)


@pytest.mark.parametrize("discrete", [False, True])
def test_unit_rewards_give_the_plain_distribution(discrete) -> None:
    g, theta = with_defect(9, cyclic=True, discrete=discrete)
    ys = np.arange(0.0, 8.0) if discrete else YS
    ones = np.ones(g.vertices_length())
    got = np.asarray(phasic.compute_pmf_ffi(g, theta, ys, discrete=discrete, rewards=ones))
    plain = np.asarray(phasic.compute_pmf_ffi(g, theta, ys, discrete=discrete))
    np.testing.assert_allclose(got, plain, rtol=1e-12, atol=1e-300)


def test_vmap_over_rewards_with_different_zero_patterns() -> None:
    """One call whose batch elements need different reduced graphs."""
    g, theta = with_defect(6, cyclic=True, discrete=True)
    rows = np.stack([random_rewards(s, g.vertices_length(), True, s % 3 != 0)
                     for s in range(5)])
    ys = jnp.arange(0.0, 10.0)
    fn = jax.jit(jax.vmap(lambda r: phasic.compute_log_pmf_ffi(g, theta, ys, discrete=True,
                                                                rewards=r)))
    got = np.asarray(fn(rows))
    for i, r in enumerate(rows):
        with np.errstate(divide="ignore"):
            np.testing.assert_allclose(got[i], np.log(reference_pmf(g, theta, r, ys)),
                                       rtol=1e-9)


def test_all_zero_rewards_is_all_atom() -> None:
    g = models.kingman(4)
    zero = np.zeros(g.vertices_length())
    pdf = np.asarray(phasic.compute_pmf_ffi(g, jnp.array([1.0]), [0.0, 1.0], rewards=zero))
    assert np.all(pdf == 0.0)
    gd, theta = with_defect(1, cyclic=False, discrete=True)
    z = np.zeros(gd.vertices_length())
    pmf = np.asarray(phasic.compute_pmf_ffi(gd, theta, [0.0, 1.0, 3.0], discrete=True,
                                            rewards=z))
    np.testing.assert_array_equal(pmf, [1.0, 0.0, 0.0])


# ------------------------------------------------------------------ gradients


# cases whose density depends on theta (in others theta only moves mass that the
# rewards send to the atom)
GRADIENT_CASES = [(1, False, False), (1, True, False), (2, False, False), (3, True, False),
                  (1, False, True), (2, False, True), (5, True, True), (6, True, True),
                  (8, True, True)]


@pytest.mark.parametrize("seed,cyclic,zeros", GRADIENT_CASES)
def test_gradients_match_finite_differences(seed, cyclic, zeros) -> None:
    g, theta, r = graph_and_rewards(seed, cyclic=cyclic, discrete=False, zeros=zeros)
    ys = jnp.array([0.3, 1.2, 3.0])
    assert np.abs(np.asarray(jax.jacfwd(lambda t: phasic.compute_pmf_ffi(
        g, t, ys, rewards=r))(jnp.asarray(theta)))).max() > 1e-3

    def pdf(t):
        return phasic.compute_pmf_ffi(g, jnp.asarray(t), ys, rewards=r)

    def logpdf(t):
        return phasic.compute_log_pmf_ffi(g, jnp.asarray(t), ys, rewards=r)

    for f in (pdf, logpdf):
        jac = np.asarray(jax.jacfwd(f)(jnp.asarray(theta)))
        fd = central_difference(f, theta)
        np.testing.assert_allclose(jac, fd, rtol=1e-6, atol=1e-9)
    ll = lambda t: phasic.loglik(g, jnp.asarray(t), ys, rewards=r)  # noqa: E731
    grad = np.asarray(jax.grad(ll)(jnp.asarray(theta)))
    np.testing.assert_allclose(grad, central_difference(ll, theta), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("cyclic", [False, True])
def test_discrete_gradients_match_finite_differences(cyclic) -> None:
    g, theta, r = graph_and_rewards(7, cyclic=cyclic, discrete=True, zeros=True)
    ys = jnp.array([0.0, 2.0, 5.0, 9.0])

    def logpmf(t):
        return phasic.compute_log_pmf_ffi(g, jnp.asarray(t), ys, discrete=True, rewards=r)

    jac = np.asarray(jax.jacfwd(logpmf)(jnp.asarray(theta)))
    np.testing.assert_allclose(jac, central_difference(logpmf, theta), rtol=1e-6, atol=1e-9)


def test_kingman_gradient_with_zero_rewards_under_jit() -> None:
    g = models.kingman(6)
    r = g.states()[:, 1].astype(float)
    ys = jnp.array([0.2, 0.9, 2.5])
    ll = jax.jit(lambda t: phasic.loglik(g, t, ys, rewards=r))
    theta = np.array([0.8])
    grad = np.asarray(jax.grad(ll)(jnp.asarray(theta)))
    np.testing.assert_allclose(grad, central_difference(ll, theta), rtol=1e-7)


def test_rewards_are_not_differentiable() -> None:
    g = models.kingman(4)
    r = jnp.asarray(total_length_rewards(g))
    with pytest.raises(TypeError, match="rewards.*stop_gradient"):
        jax.grad(lambda rr: phasic.compute_pmf_ffi(g, jnp.array([1.0]), [1.0], rewards=rr)[0])(r)


# ------------------------------------------------------------------ loglik, upstream's name


def test_loglik_with_reward_matrix_sums_rows() -> None:
    g = models.kingman(5)
    rows = np.stack([total_length_rewards(g), g.states()[:, 0].astype(float)])
    obs = np.array([[0.5, 2.0, 3.0], [0.4, 1.0, 1.5]])
    got = float(phasic.loglik(g, jnp.array([1.0]), obs, rewards=rows))
    want = sum(float(np.log(reference_pdf(g, np.array([1.0]), rows[i], obs[i])).sum())
               for i in range(2))
    assert math.isclose(got, want, rel_tol=1e-10)


def test_shard_map_loglik_with_zero_rewards_and_gradients() -> None:
    # One θ per device (and a second per device), the singleton-class rewards with zeros:
    # the sharded values and gradients equal the unsharded ones bit for bit.
    from jax.sharding import Mesh, PartitionSpec

    g = models.kingman(6)
    singletons = models.kingman_sfs_rewards(g, 1)
    observed = jnp.array([0.3, 1.1, 2.5, 4.0])
    mesh = Mesh(np.array(jax.devices()), ("d",))
    thetas = jnp.linspace(0.5, 2.0, 2 * len(jax.devices()))[:, None]

    def logliks(th: jax.Array) -> jax.Array:
        return jax.vmap(lambda t: phasic.loglik(g, t, observed, rewards=singletons))(th)

    sharded = jax.shard_map(logliks, mesh=mesh, in_specs=PartitionSpec("d"),
                            out_specs=PartitionSpec("d"))
    np.testing.assert_array_equal(np.asarray(jax.jit(sharded)(thetas)),
                                  np.asarray(logliks(thetas)))
    got = jax.jit(jax.grad(lambda th: sharded(th).sum()))(thetas)
    want = jax.grad(lambda th: logliks(th).sum())(thetas)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    fd = central_difference(
        lambda t: float(phasic.loglik(g, jnp.asarray(t), observed, rewards=singletons)),
        np.asarray(thetas[1]))
    np.testing.assert_allclose(np.asarray(got[1]), fd, rtol=1e-6)


def test_multivariate_ffi_as_upstream_documents() -> None:
    """times (n_times, n_features), rewards (n_features, V); zero times mean missing."""
    g = models.kingman(4)
    rewards = np.stack([total_length_rewards(g), total_length_rewards(g) * 0.5])
    times = np.array([[1.5, 0.0], [0.0, 2.1], [1.2, 1.8]])
    got = np.asarray(compute_pmf_multivariate_ffi(g, jnp.array([1.0]), times, rewards))
    assert got.shape == (3, 2)
    assert got[0, 1] == 0.0 and got[1, 0] == 0.0
    np.testing.assert_allclose(got[[0, 2], 0], kingman_length_pdf(4, 1.0, times[[0, 2], 0]),
                               rtol=1e-9)
    np.testing.assert_allclose(got[[1, 2], 1],
                               2 * kingman_length_pdf(4, 1.0, 2 * times[[1, 2], 1]), rtol=1e-9)
    with pytest.raises(ValueError, match="compute_joint"):
        compute_pmf_multivariate_ffi(g, jnp.array([1.0]), times, rewards, compute_joint=True)
