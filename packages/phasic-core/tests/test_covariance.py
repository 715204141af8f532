"""Covariance of reward-weighted times: compute_covariance_ffi and Graph.covariance.

The reference never uses the kernel's formula: Cov(Y_i, Y_j) is recovered from
variances by polarization, (Var(Y_i + Y_j) - Var(Y_i) - Var(Y_j)) / 2, with the
variances from the dense textbook moments of core_reference (first-step analysis
for discrete graphs). The Kingman cases build their own dense state space.
"""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from core_graphs import random_graph, with_defect
from core_reference import Dense, dense, finite_difference, moments

import phasic
from phasic import Graph, models


def reference_covariance(structure, theta, rewards: np.ndarray) -> np.ndarray:
    """Cov(Y_i, Y_j) for the rows of `rewards` by polarization of dense variances."""

    def var(r: np.ndarray) -> float:
        m = moments(structure, theta, 2, r)
        return m[1] - m[0] ** 2

    rows = len(rewards)
    out = np.empty((rows, rows))
    for i, j in itertools.product(range(rows), repeat=2):
        out[i, j] = (var(rewards[i] + rewards[j]) - var(rewards[i]) - var(rewards[j])) / 2
    return out


def formula_covariance(d: Dense, rewards: np.ndarray) -> np.ndarray:
    """The kernel's formula in dense numpy: alpha U (r_i o u_j + r_j o u_i) [- alpha U r_i r_j]."""
    n = len(d.transient)
    inv = np.linalg.inv(np.eye(n) - d.T) if d.discrete else np.linalg.inv(-d.T)
    r = rewards[:, d.transient]
    u = r @ inv.T  # row i: U r_i
    g = d.alpha @ inv
    second = g @ (r[:, None, :] * u[None, :, :] + r[None, :, :] * u[:, None, :]).transpose(0, 2, 1)
    if d.discrete:
        second = second - (r * g) @ r.T
    mean = u @ d.alpha
    return second - np.outer(mean, mean)


def random_rewards(seed: int, vertices: int, rows: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed + 1000)
    r = rng.uniform(0.0, 3.0, size=(rows, vertices))
    r[rng.random(r.shape) < 0.25] = 0.0  # zero rewards are allowed
    return r


GRAPHS = [(seed, cyclic, discrete) for seed in (1, 2, 3) for cyclic in (False, True)
          for discrete in (False, True)]


@pytest.mark.parametrize("seed,cyclic,discrete", GRAPHS)
def test_matches_dense_reference(seed: int, cyclic: bool, discrete: bool) -> None:
    g, theta = with_defect(seed, cyclic=cyclic, discrete=discrete)
    d = dense(g, theta)
    assert d.defect > 0.0
    rewards = random_rewards(seed, g.vertices_length())
    want = reference_covariance(g, theta, rewards)
    np.testing.assert_allclose(formula_covariance(d, rewards), want, rtol=1e-9, atol=1e-12)
    got = np.asarray(phasic.compute_covariance_ffi(g, theta, rewards))
    assert got.shape == (3, 3)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12 * np.abs(want).max())
    np.testing.assert_array_equal(got, got.T)


@pytest.mark.parametrize("discrete", [False, True])
def test_diagonal_is_the_variance_of_compute_moments(discrete: bool) -> None:
    case = random_graph(11, cyclic=True, discrete=discrete)
    rewards = random_rewards(11, case.graph.vertices_length(), rows=4)
    cov = np.asarray(phasic.compute_covariance_ffi(case.graph, case.theta, rewards))
    for i in range(4):
        m = np.asarray(phasic.compute_moments_ffi(case.graph, case.theta, 2, rewards=rewards[i]))
        np.testing.assert_allclose(cov[i, i], m[1] - m[0] ** 2, rtol=1e-12)
    one = phasic.compute_covariance_ffi(case.graph, case.theta, rewards[2])
    assert one.shape == (1, 1)
    np.testing.assert_allclose(one[0, 0], cov[2, 2], rtol=1e-14)


def kingman_dense(n: int, rate: float) -> tuple[np.ndarray, np.ndarray, list[tuple[int, ...]]]:
    """Kingman's block-counting chain built here: alpha, S and the transient states.

    A state (a_1, ..., a_{n-1}) counts the lineages subtending i samples; two lineages
    subtending a and b samples merge at `rate` per pair.
    """
    start = (n,) + (0,) * (n - 2)
    states, index, todo = [start], {start: 0}, [start]
    edges: list[tuple[tuple[int, ...], tuple[int, ...], float]] = []
    while todo:
        s = todo.pop()
        if sum(s) == 1:
            continue
        for a in range(1, n):
            for b in range(a, n - a + 1):
                pairs = s[a - 1] * (s[a - 1] - 1) // 2 if a == b else s[a - 1] * s[b - 1]
                if pairs == 0:
                    continue
                t = list(s)
                t[a - 1] -= 1
                t[b - 1] -= 1
                if a + b < n:
                    t[a + b - 1] += 1
                t = tuple(t)
                edges.append((s, t, pairs * rate))
                if sum(t) >= 2 and t not in index:
                    index[t] = len(states)
                    states.append(t)
                    todo.append(t)
    m = len(states)
    S = np.zeros((m, m))
    for s, t, w in edges:
        S[index[s], index[s]] -= w
        if t in index:
            S[index[s], index[t]] += w
    alpha = np.zeros(m)
    alpha[0] = 1.0
    return alpha, S, states


@pytest.mark.parametrize("n", [4, 5, 6])
def test_kingman_sfs_covariance(n: int) -> None:
    rate = 0.7
    alpha, S, states = kingman_dense(n, rate)
    U = np.linalg.inv(-S)
    xi = np.array(states, dtype=float).T  # row i-1: reward a_i, the SFS class i
    rows = np.vstack([xi, np.ones(len(states))])  # the n - 1 SFS classes and T_MRCA

    def second(r1: np.ndarray, r2: np.ndarray) -> float:  # textbook E[Y1 Y2] from U
        return alpha @ U @ (r1 * (U @ r2)) + alpha @ U @ (r2 * (U @ r1))

    mean = rows @ (alpha @ U)
    want = np.array([[second(a, b) for b in rows] for a in rows]) - np.outer(mean, mean)

    g = models.kingman(n)
    by_state = {tuple(int(x) for x in v.state()): v.index() for v in g.vertices()}
    rewards = np.zeros((n, g.vertices_length()))
    for k, s in enumerate(states):
        rewards[:, by_state[s]] = rows[:, k]
    got = np.asarray(phasic.compute_covariance_ffi(g, jnp.array([rate]), rewards))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    # The total branch length (reward: the number of lineages, the sum of the SFS
    # rewards) at one unit per pair has variance 4 sum_{k<n} 1/k^2.
    total_rewards = rewards[: n - 1].sum(axis=0)
    var_total = np.asarray(
        phasic.compute_covariance_ffi(g, jnp.array([1.0]), total_rewards))[0, 0]
    np.testing.assert_allclose(var_total, 4 * math.fsum(1 / k**2 for k in range(1, n)),
                               rtol=1e-13)


@pytest.mark.parametrize("n", [2, 5, 12])
def test_kingman_tmrca_and_total_length_covariance(n: int) -> None:
    # With k lineages for an Exp(k(k-1)/2) time T_k (one unit per pair), T_MRCA = sum T_k
    # and L = sum k T_k, so Cov(T_MRCA, L) = sum_k k Var(T_k) = sum_{k=2}^n 4 / (k (k-1)^2),
    # Var(T_MRCA) = sum 4 / (k (k-1))^2 and Var(L) = sum 4 / (k-1)^2.
    g = models.kingman(n)
    rows = np.stack([np.ones(g.vertices_length()), models.kingman_total_length_rewards(g)])
    got = np.asarray(phasic.compute_covariance_ffi(g, jnp.array([1.0]), rows))
    ks = range(2, n + 1)
    want = np.array([
        [math.fsum(4 / (k * (k - 1)) ** 2 for k in ks), math.fsum(4 / (k * (k - 1) ** 2) for k in ks)],
        [math.fsum(4 / (k * (k - 1) ** 2) for k in ks), math.fsum(4 / (k - 1) ** 2 for k in ks)],
    ])
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert g.covariance(rows[0], rows[1], theta=[1.0]) == pytest.approx(want[0, 1], rel=1e-12)


def fu_sigma(n: int) -> np.ndarray:
    """Fu's (1995) closed form sigma_ij of the SFS counts, i, j = 1..n-1.

    Cov(xi_i, xi_j) = delta_ij theta / i + sigma_ij theta^2 for counts with mutation
    rate theta / 2 per unit of branch length (pair-coalescence rate 1), so the branch
    lengths behind them have Cov(L_i, L_j) = 4 sigma_ij.
    """

    def a(m: int) -> float:
        return math.fsum(1 / k for k in range(1, m))

    def beta(i: int) -> float:
        return 2 * n / ((n - i + 1) * (n - i)) * (a(n + 1) - a(i)) - 2 / (n - i)

    sigma = np.empty((n - 1, n - 1))
    for i in range(1, n):
        if 2 * i < n:
            sigma[i - 1, i - 1] = beta(i + 1)
        elif 2 * i == n:
            sigma[i - 1, i - 1] = 2 * (a(n) - a(i)) / (n - i) - 1 / i**2
        else:
            sigma[i - 1, i - 1] = beta(i) - 1 / i**2
        for j in range(1, i):
            if i + j < n:
                v = (beta(i + 1) - beta(i)) / 2
            elif i + j == n:
                v = ((a(n) - a(i)) / (n - i) + (a(n) - a(j)) / (n - j)
                     - (beta(i) + beta(j + 1)) / 2 - 1 / (i * j))
            else:
                v = (beta(j) - beta(j + 1)) / 2 - 1 / (i * j)
            sigma[i - 1, j - 1] = sigma[j - 1, i - 1] = v
    return sigma


@pytest.mark.parametrize("n", [4, 7, 10])
def test_kingman_sfs_covariance_matches_fu(n: int) -> None:
    g = models.kingman(n)
    sfs = np.stack([models.kingman_sfs_rewards(g, i) for i in range(1, n)])
    got = np.asarray(phasic.compute_covariance_ffi(g, jnp.array([1.0]), sfs))
    np.testing.assert_allclose(got, 4 * fu_sigma(n), rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("seed,cyclic,discrete", [(4, True, False), (5, False, False),
                                                  (6, True, True)])
def test_gradients_match_finite_differences(seed: int, cyclic: bool, discrete: bool) -> None:
    g, theta = with_defect(seed, cyclic=cyclic, discrete=discrete)
    rewards = random_rewards(seed, g.vertices_length())

    def cov(th):
        return phasic.compute_covariance_ffi(g, th, rewards)

    jac = np.asarray(jax.jacfwd(cov)(jnp.asarray(theta)))
    assert jac.shape == (3, 3, len(theta))
    fd = finite_difference(lambda th: reference_covariance(g, th, rewards), theta)
    scale = np.abs(fd).max()
    np.testing.assert_allclose(jac, fd, rtol=1e-6, atol=1e-6 * scale)
    np.testing.assert_allclose(np.asarray(jax.jacrev(cov)(jnp.asarray(theta))), jac,
                               rtol=1e-14, atol=1e-15 * scale)
    grad = jax.grad(lambda th: cov(th)[0, 1])(jnp.asarray(theta))
    np.testing.assert_allclose(np.asarray(grad), jac[0, 1], rtol=1e-14)


def test_jit_and_vmap_over_theta_and_reward_batches() -> None:
    g = models.two_island(3)
    theta = jnp.array([1.0, 0.3])
    batch = random_rewards(7, g.vertices_length(), rows=2 * 4).reshape(4, 2, -1)
    one = jax.jit(lambda r: phasic.compute_covariance_ffi(g, theta, r))
    many = jax.jit(jax.vmap(lambda r: phasic.compute_covariance_ffi(g, theta, r)))(batch)
    assert many.shape == (4, 2, 2)
    for b in range(4):
        np.testing.assert_array_equal(np.asarray(many[b]), np.asarray(one(batch[b])))
        np.testing.assert_allclose(np.asarray(many[b]),
                                   reference_covariance(g, np.asarray(theta), batch[b]),
                                   rtol=1e-10)
    thetas = jnp.array([[1.0, 0.3], [2.0, 0.5], [0.5, 1.5]])
    over_theta = jax.vmap(lambda th: phasic.compute_covariance_ffi(g, th, batch[0]))(thetas)
    for k in range(3):
        np.testing.assert_array_equal(
            np.asarray(over_theta[k]),
            np.asarray(phasic.compute_covariance_ffi(g, thetas[k], batch[0])))
    grads = jax.vmap(jax.grad(lambda th: phasic.compute_covariance_ffi(g, th, batch[0])[0, 1]))(
        thetas)
    fd = finite_difference(lambda th: reference_covariance(g, th, batch[0])[0, 1],
                           np.asarray(thetas[1]))
    np.testing.assert_allclose(np.asarray(grads[1]), fd, rtol=1e-6)


def small_graph() -> Graph:
    g = Graph(1)
    a, b, c = (g.find_or_create_vertex([k]) for k in (1, 2, 3))
    g.starting_vertex().add_edge(a, 1.0)
    a.add_edge(b, [2.0])
    a.add_edge(c, 1.0)
    b.add_edge(a, 0.5)
    b.add_edge(c, [3.0])
    return g


def test_graph_covariance_and_stored_theta() -> None:
    g = small_graph()
    r1, r2 = [0.0, 1.0, 2.0, 0.0], [0.0, 0.5, 1.0, 0.0]
    # upstream phasic 0.32.1 gives 0.26731301939058155 for these rates (theta = 1)
    assert g.covariance(r1, r2, theta=[1.0]) == pytest.approx(0.26731301939058155, rel=1e-13)
    g.update_weights([1.0])
    assert g.covariance(r1, r2) == pytest.approx(0.26731301939058155, rel=1e-13)
    assert g.covariance(r1, r1) == pytest.approx(g.variance(r1), rel=1e-13)
    assert g.covariance() == pytest.approx(g.variance(), rel=1e-13)  # no rewards: T itself
    got = g.covariance(r1, r2, theta=[2.5])
    want = reference_covariance(g, np.array([2.5]), np.array([r1, r2]))[0, 1]
    assert got == pytest.approx(want, rel=1e-12)


def test_no_transient_vertex_gives_zero() -> None:
    g = Graph(1)
    g.starting_vertex().add_edge(g.find_or_create_vertex([1]), 1.0)
    cov = phasic.compute_covariance_ffi(g, jnp.zeros(0), np.ones((2, 2)))
    np.testing.assert_array_equal(np.asarray(cov), np.zeros((2, 2)))


KJ = models.kingman(4)
V = KJ.vertices_length()


@pytest.mark.parametrize("rewards,error,match", [
    (np.ones((2, V + 1)), ValueError, rf"rewards must have shape \(R, {V}\).*\(2, {V + 1}\)"),
    (np.ones((2, 2, V)), ValueError, r"rewards must have shape \(R, "),
    (np.ones((0, V)), ValueError, r"R >= 1"),
    (np.ones((2, V), dtype=np.float32), TypeError, r"rewards has dtype float32"),
    (np.ones((2, V), dtype=np.int64), TypeError, r"rewards has dtype int64"),
    (np.array([[1.0] * V, [1.0] * (V - 1) + [-1.0]]), (ValueError, RuntimeError),
     rf"rewards\[1, {V - 1}\] is -1.*finite and >= 0"),
    (np.array([[1.0] * (V - 1) + [np.nan]]), (ValueError, RuntimeError),
     rf"rewards\[0, {V - 1}\] is nan"),
])
def test_bad_rewards(rewards, error, match: str) -> None:
    with pytest.raises(error, match=match):
        phasic.compute_covariance_ffi(KJ, jnp.array([1.0]), rewards)
    assert float(phasic.compute_covariance_ffi(KJ, jnp.array([1.0]), np.ones(V))[0, 0]) > 0


def test_bad_theta_and_graph_arguments() -> None:
    with pytest.raises(ValueError, match=r"theta must have shape \(1,\)"):
        phasic.compute_covariance_ffi(KJ, jnp.array([1.0, 2.0]), np.ones((1, V)))
    with pytest.raises((ValueError, RuntimeError), match=r"theta\[0\] is nan"):
        phasic.compute_covariance_ffi(KJ, jnp.array([np.nan]), np.ones((1, V)))
    with pytest.raises(TypeError, match=r"differentiable with respect to theta only"):
        jax.grad(lambda r: phasic.compute_covariance_ffi(KJ, jnp.array([1.0]), r)[0, 0])(
            jnp.ones((1, V)))
    g = models.kingman(4)
    with pytest.raises(ValueError, match=r"vertices_length\(\) = "):
        g.covariance(np.ones(V + 2), np.ones(V), theta=[1.0])
    with pytest.raises(ValueError, match=r"rewards2\[0\] is -1\.0; rewards must be"):
        g.covariance(np.ones(V), -np.ones(V), theta=[1.0])
    with pytest.raises(ValueError, match=r"theta"):
        g.covariance(np.ones(V), np.ones(V))  # no theta given, none stored
