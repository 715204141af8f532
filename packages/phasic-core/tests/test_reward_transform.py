"""Graph.reward_transform, reward_transform_discrete, defect(rewards) and discretize.

References never call phasic.transforms: the transformed sub-intensity matrix is built
with numpy from the dense matrices of core_reference (the textbook Schur complement
over the zero-reward states, then rows divided by the rewards), discrete rewards are
checked by a dynamic programme over reward levels, moments against the C++ reward
moments of the original graph, and closed forms (Kingman's total branch length,
Tavare's number of segregating sites, the geometric-mixture pmf of mutation counts).
"""

from __future__ import annotations

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from core_graphs import random_graph
from core_reference import dense

import phasic
from phasic import Graph, models

CASES = [(seed, cyclic) for seed in (3, 11, 27, 40) for cyclic in (False, True)]


def transformed_dense(graph: Graph, theta, rewards):
    """(alpha', S', s') of the continuous reward transform, by dense matrix algebra."""
    d = dense(graph, theta)
    r = np.asarray(rewards, dtype=float)[d.transient]
    pos, zero = r > 0, r == 0
    S, s, a = d.T, d.exit, d.alpha
    spp, sp, ap = S[np.ix_(pos, pos)], s[pos], a[pos]
    if zero.any():
        # X: where the chain leaves the zero-reward block (to positive states, or absorbed)
        x = np.linalg.solve(-S[np.ix_(zero, zero)],
                            np.hstack([S[np.ix_(zero, pos)], s[zero][:, None]]))
        spp = spp + S[np.ix_(pos, zero)] @ x[:, :-1]
        sp = sp + S[np.ix_(pos, zero)] @ x[:, -1]
        ap = ap + a[zero] @ x[:, :-1]
    return ap, spp / r[pos][:, None], sp / r[pos]


def dense_pdf_cdf(rep, ys):
    a, S, s = rep
    pdf = np.array([a @ scipy.linalg.expm(S * y) @ s for y in ys])
    cdf = np.array([1.0 - a @ scipy.linalg.expm(S * y) @ np.ones(len(a)) for y in ys])
    return pdf, cdf


def level_pmf(graph: Graph, theta, rewards, ymax: int) -> np.ndarray:
    """P(Y = y), y = 0..ymax, of a discrete graph: v[y][i] is the probability of entering
    state i with reward y collected so far; zero-reward states recur within a level."""
    d = dense(graph, theta)
    r = np.round(np.asarray(rewards, dtype=float)[d.transient]).astype(int)
    n = len(r)
    stay = np.linalg.inv(np.eye(n) - (r == 0)[:, None] * d.T)  # loops inside a level
    v = np.zeros((ymax + 1, n))
    pmf = np.zeros(ymax + 1)
    pmf[0] = d.defect
    for y in range(ymax + 1):
        b = d.alpha.copy() if y == 0 else np.zeros(n)
        for i in range(n):
            if 0 < r[i] <= y:
                b += v[y - r[i]][i] * d.T[i]
        v[y] = b @ stay
        for i in range(n):
            if r[i] <= y:  # absorbed from i after collecting its reward
                pmf[y] += v[y - r[i]][i] * d.exit[i]
    return pmf


def rewards_for(case, rng, zeros: bool, whole: bool = False) -> np.ndarray:
    n = case.graph.vertices_length()
    r = rng.integers(1, 4, size=n).astype(float) if whole else rng.uniform(0.3, 3.0, size=n)
    if zeros:
        r[rng.random(n) < 0.4] = 0.0
        transient = [v.index() for v in case.graph.vertices()[1:] if v.edges()]
        r[rng.choice(transient)] = 0.0  # at least one transient vertex earns nothing
    return r


# -- continuous ---------------------------------------------------------------------

@pytest.mark.parametrize("seed,cyclic", CASES)
@pytest.mark.parametrize("zeros", [False, True])
def test_continuous_matches_dense_transform(seed, cyclic, zeros):
    case = random_graph(seed, cyclic=cyclic)
    g, theta = case.graph, case.theta
    r = rewards_for(case, np.random.default_rng(seed), zeros)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the zero-mass warning
        t = g.reward_transform(r, theta=theta)
    rep = transformed_dense(g, theta, r)
    ys = np.array([0.05, 0.4, 1.3, 3.0])
    pdf, cdf = dense_pdf_cdf(rep, ys)
    at = None if zeros else theta  # the eliminated result has constant weights
    np.testing.assert_allclose(t.pdf(ys, theta=at), pdf, rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(t.cdf(ys, theta=at), cdf, rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(t.moments(3, theta=at), g.moments(3, r, theta=theta),
                               rtol=1e-10)
    assert t.defect(theta=at) == pytest.approx(1.0 - rep[0].sum(), abs=1e-13)
    assert g.defect(r, theta=theta) == pytest.approx(1.0 - rep[0].sum(), abs=1e-13)
    assert t.param_length() == (0 if zeros else g.param_length())


def test_positive_rewards_keep_theta():
    case = random_graph(5, cyclic=True)
    g, theta = case.graph, case.theta
    r = rewards_for(case, np.random.default_rng(1), zeros=False)
    t = g.reward_transform(r)  # no theta needed: the result is linear in theta
    ys = np.array([0.2, 1.0, 2.5])
    for th in (theta, 1.7 * theta):
        pdf, cdf = dense_pdf_cdf(transformed_dense(g, th, r), ys)
        np.testing.assert_allclose(t.pdf(ys, theta=th), pdf, rtol=1e-9, atol=1e-13)
        np.testing.assert_allclose(t.cdf(ys, theta=th), cdf, rtol=1e-9, atol=1e-13)
    g.update_weights(theta)
    assert np.array_equal(g.reward_transform(r)._stored, theta)
    assert [tuple(s) for s in t.states()] == [tuple(s) for s in g.states()]


def test_gradient_of_transformed_pdf_matches_finite_differences():
    case = random_graph(8, cyclic=True)
    g, theta = case.graph, case.theta
    r = rewards_for(case, np.random.default_rng(2), zeros=False)
    t = g.reward_transform(r)
    ys = np.array([0.3, 1.1])

    def dense_pdf(th):
        return dense_pdf_cdf(transformed_dense(g, th, r), ys)[0].sum()

    grad = jax.grad(lambda th: phasic.compute_pmf_ffi(t, th, jnp.asarray(ys)).sum())(
        jnp.asarray(theta))
    h = 1e-5
    fd = [(dense_pdf(theta + h * e) - dense_pdf(theta - h * e)) / (2 * h)
          for e in np.eye(len(theta))]
    np.testing.assert_allclose(np.asarray(grad), fd, rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize("n", [3, 6, 9])
def test_kingman_total_branch_length_cdf(n):
    k = models.kingman(n)  # theta[0] = 1: pair coalescence rate 1 (coalescent units)
    t = k.reward_transform(models.kingman_total_length_rewards(k))
    xs = np.array([0.1, 1.0, 3.0, 8.0])
    np.testing.assert_allclose(t.cdf(xs, theta=[1.0]), (1 - np.exp(-xs / 2)) ** (n - 1),
                               rtol=1e-9)
    assert t.defect(theta=[1.0]) == 0.0


def test_zero_rewards_use_the_stored_theta():
    k = models.kingman(5)
    r = models.kingman_sfs_rewards(k, 3)  # no tripleton branch with probability 1/6
    k.update_weights([2.0])
    with pytest.warns(UserWarning):
        stored = k.reward_transform(r)
    with pytest.warns(UserWarning):
        given = k.reward_transform(r, theta=[2.0])
    assert stored.to_json() == given.to_json()
    assert k.defect(r) == k.defect(r, theta=[2.0]) == pytest.approx(stored.defect(), rel=1e-14)
    # rewards without zeros need theta only as any computation does
    with pytest.raises(ValueError, match=r"the edge weights need theta"):
        models.kingman(5).defect(models.kingman_total_length_rewards(k))


def test_kingman_sfs_class_has_mass_at_zero():
    k = models.kingman(5)
    r = models.kingman_sfs_rewards(k, 3)
    with pytest.warns(UserWarning, match=r"P\(Y = 0\) = 0.166667.*validate_rewards=False"):
        t = k.reward_transform(r, theta=[1.0])
    # no tripleton branch: the lineage subtending 3 never forms, P = 1/6 for n = 5
    ref = transformed_dense(k, [1.0], r)
    assert k.defect(r, theta=[1.0]) == pytest.approx(1.0 - ref[0].sum(), rel=1e-13)
    assert t.defect() == pytest.approx(1.0 / 6.0, rel=1e-13)
    np.testing.assert_allclose(t.moments(2), k.moments(2, r, theta=[1.0]), rtol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        k.reward_transform(r, theta=[1.0], validate_rewards=False)


def test_hand_example_states_and_defect():
    g = Graph(1)
    a, b, c, z = (g.find_or_create_vertex([i]) for i in (1, 2, 4, 3))
    g.starting_vertex().add_edge(a, 0.6)
    g.starting_vertex().add_edge(c, 0.4)
    a.add_edge(b, 2.0)
    b.add_edge(z, 3.0)
    c.add_edge(z, 1.0)
    c.add_edge(a, 1.0)
    r = [0, 0, 1, 0, 0]  # only state (2,) earns: from (4,) half the paths skip it
    assert g.defect(r) == pytest.approx(0.2, abs=1e-15)
    assert g.defect() == 0.0
    with pytest.warns(UserWarning):
        t = g.reward_transform(r)
    assert t.states().tolist() == [[0], [2], [3]]
    assert t.defect() == pytest.approx(0.2, abs=1e-15)
    assert t.expectation() == pytest.approx(0.8 / 3.0, rel=1e-14)


# -- discrete -----------------------------------------------------------------------

@pytest.mark.parametrize("seed,cyclic", CASES)
@pytest.mark.parametrize("zeros", [False, True])
def test_discrete_matches_level_recursion(seed, cyclic, zeros):
    case = random_graph(seed, cyclic=cyclic, discrete=True)
    g, theta = case.graph, case.theta
    r = rewards_for(case, np.random.default_rng(seed + 100), zeros, whole=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        t = g.reward_transform_discrete(r, theta=theta)
    at = None if zeros else theta
    ys = np.arange(0, 12)
    ref = level_pmf(g, theta, r, ys[-1])
    np.testing.assert_allclose(t.pmf(ys[1:], theta=at), ref[1:], rtol=1e-9, atol=1e-14)
    assert t.defect(theta=at) == pytest.approx(ref[0], abs=1e-14)
    assert g.defect(r, theta=theta) == pytest.approx(ref[0], abs=1e-14)
    np.testing.assert_allclose(t.moments(3, theta=at), g.moments(3, r, theta=theta),
                               rtol=1e-9)
    # auxiliary chain states: the original state plus j = 1..k-1; originals end in 0
    states = t.states()
    assert states.shape[1] == g.state_length() + 1
    assert len({tuple(s) for s in states[1:]}) == len(states) - 1
    if not zeros:  # still linear in theta: scaling theta keeps the rows sub-stochastic
        th = 0.8 * theta
        np.testing.assert_allclose(t.pmf(ys[1:], theta=th), level_pmf(g, th, r, 11)[1:],
                                   rtol=1e-9, atol=1e-14)


@pytest.mark.parametrize("seed", [11, 27])
def test_discrete_transform_gradient_matches_finite_differences(seed):
    # the remainder edges back into a chain have negative coefficients: still exact
    case = random_graph(seed, cyclic=True, discrete=True)
    g, theta = case.graph, case.theta
    r = np.random.default_rng(seed).integers(1, 4, size=g.vertices_length()).astype(float)
    t = g.reward_transform(r)
    ks = jnp.arange(1.0, 9.0)
    grad = jax.grad(lambda th: phasic.compute_pmf_ffi(t, th, ks, discrete=True).sum())(
        jnp.asarray(theta))
    h = 1e-6
    fd = [(level_pmf(g, theta + h * e, r, 8)[1:].sum()
           - level_pmf(g, theta - h * e, r, 8)[1:].sum()) / (2 * h) for e in np.eye(len(theta))]
    np.testing.assert_allclose(np.asarray(grad), fd, rtol=1e-6, atol=1e-10)


def test_discrete_reward_two_doubles_the_steps():
    g = Graph(1, discrete=True)  # geometric: leave with probability 0.25 per step
    a, z = g.find_or_create_vertex([1]), g.find_or_create_vertex([2])
    g.starting_vertex().add_edge(a, 1.0)
    a.add_edge(z, 0.25)
    t = g.reward_transform([0, 2, 0])
    assert t.states().tolist() == [[0, 0], [1, 0], [2, 0], [1, 1]]
    ks = np.arange(1, 9)
    expected = np.where(ks % 2 == 0, 0.25 * 0.75 ** (ks // 2 - 1), 0.0)
    np.testing.assert_allclose(t.pmf(ks), expected, rtol=1e-14, atol=1e-16)


# -- discretize -----------------------------------------------------------------------

def three_states(param: bool = False) -> Graph:
    g = Graph(1)
    a, b, z = (g.find_or_create_vertex([i]) for i in (1, 2, 3))
    g.starting_vertex().add_edge(a, 1.0)
    a.add_edge(b, [2.0] if param else 2.0)
    b.add_edge(z, [3.0] if param else 3.0)
    return g


def test_discretize_matches_upstream_example():
    # upstream 0.32.1, discretize(0.5) of this graph: rows 0.8 / 0.2 and 6/7 / 1/7,
    # auxiliary vertices 4 and 5 lead back with probability 1, rewards [0 0 0 0 1 1]
    d = three_states().discretize(0.5)
    assert d.discrete and d.rewards.tolist() == [0, 0, 0, 0, 1, 1]
    rows = [[(e.to().index(), e.weight()) for e in v.edges()] for v in d.vertices()]
    expected = [[(1, 1.0)], [(2, 0.8), (4, 0.2)], [(3, 6 / 7), (5, 1 / 7)], [],
                [(1, 1.0)], [(2, 1.0)]]
    for got, want in zip(rows, expected, strict=True):
        assert [i for i, _ in got] == [i for i, _ in want]
        np.testing.assert_allclose([w for _, w in got], [w for _, w in want], rtol=1e-15)
    assert d.states().tolist() == [[0, 0], [1, 0], [2, 0], [3, 0], [1, 1], [2, 1]]
    assert d.expectation(d.rewards) == pytest.approx(0.5 * (1 / 2 + 1 / 3), rel=1e-14)
    param = three_states(param=True).discretize(0.5, theta=[1.0])
    assert param.param_length() == 0 and param.to_json() == d.to_json()


def mutation_pmf_dense(graph: Graph, theta, mu: np.ndarray, kmax: int) -> np.ndarray:
    """P(K = k) for K | path ~ Poisson(integral of mu(X_t) dt): alpha (A M)^k A s,
    A = (M - S)^{-1}, M = diag(mu)."""
    d = dense(graph, theta)
    m = np.diag(mu[d.transient])
    a_inv = np.linalg.inv(m - d.T)
    row, out = d.alpha.copy(), []
    for _ in range(kmax + 1):
        out.append(row @ a_inv @ d.exit)
        row = row @ a_inv @ m
    out[0] += d.defect
    return np.array(out)


def counts_pmf(graph: Graph, rate, kmax: int, **kwargs) -> np.ndarray:
    """P(K = k) read from the discretized graph: reward-transform it by its rewards."""
    d = graph.discretize(rate, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        counts = d.reward_transform(d.rewards)
    return np.concatenate([[counts.defect()], counts.pmf(np.arange(1, kmax + 1))])


@pytest.mark.parametrize("seed", [4, 9])
def test_discretize_counts_match_dense_mixture(seed):
    case = random_graph(seed, cyclic=True)
    g, theta = case.graph, case.theta
    rng = np.random.default_rng(seed)
    mu = rng.uniform(0.2, 2.0, size=g.vertices_length())
    got = counts_pmf(g, lambda state: mu[state[0]], 10, theta=theta)  # states are (index,)
    np.testing.assert_allclose(got, mutation_pmf_dense(g, theta, mu, 10), rtol=1e-9,
                               atol=1e-15)


@pytest.mark.parametrize("n,theta_pop", [(3, 1.0), (6, 2.5)])
def test_segregating_sites_match_tavare(n, theta_pop):
    k = models.kingman(n)
    got = counts_pmf(k, lambda state, half: half * sum(state), 12, theta=[1.0],
                     half=theta_pop / 2)
    ks = np.arange(13)
    tavare = sum((-1) ** i * math.comb(n - 1, i - 1) * (i - 1) / (theta_pop + i - 1)
                 * (theta_pop / (theta_pop + i - 1)) ** ks for i in range(2, n + 1))
    np.testing.assert_allclose(got, tavare, rtol=1e-10)


# -- bad input -------------------------------------------------------------------------

@pytest.mark.parametrize("call,error,message", [
    (lambda g: g.reward_transform([0, 1, -1, 1]), ValueError, r"rewards\[2\] is -1.*>= 0"),
    (lambda g: g.reward_transform([0, 1, np.nan, 1]), ValueError, r"rewards\[2\] is nan"),
    (lambda g: g.reward_transform([0, 1, 1]), ValueError, r"vertices_length\(\) = 4"),
    (lambda g: g.reward_transform([[0, 1, 1, 1]]), ValueError, r"one vector.*shape \(1, 4\)"),
    (lambda g: g.reward_transform(["a"] * 4), TypeError, r"rewards must be numeric"),
    (lambda g: g.reward_transform([0, 0, 1, 1]), ValueError,
     r"rewards are 0 on transient vertices \[1\].*non-linear in theta.*pass theta="),
    (lambda g: g.defect([0, 0, 1, 1]), ValueError, r"non-linear in theta"),
    (lambda g: g.reward_transform_discrete([0, 1, 1, 1]), TypeError, r"continuous"),
    (lambda g: g.discretize(0.0, theta=[1.0]), ValueError, r"rate must be finite and > 0"),
    (lambda g: g.discretize("fast", theta=[1.0]), TypeError, r"rate must be a number"),
    (lambda g: g.discretize(lambda s: -1.0, theta=[1.0]), ValueError,
     r"rate for state \[1\] is -1.0"),
    (lambda g: g.discretize(0.5), ValueError, r"theta"),
])
def test_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call(three_states(param=True))


def test_bad_discrete_input():
    g = Graph(1, discrete=True)
    a, z = g.find_or_create_vertex([1]), g.find_or_create_vertex([2])
    g.starting_vertex().add_edge(a, 1.0)
    a.add_edge(z, 0.5)
    with pytest.raises(ValueError, match=r"rewards\[1\] is 1.5.*whole numbers"):
        g.reward_transform([0, 1.5, 0])
    with pytest.raises(TypeError, match=r"already discrete"):
        g.discretize(0.5)


def test_no_start_edge_is_reported():
    g = Graph(1)
    a, b = g.find_or_create_vertex([1]), g.find_or_create_vertex([2])
    a.add_edge(b, 1.0)
    for call in (lambda: g.reward_transform([0, 0, 0]), lambda: g.defect([0, 0, 0])):
        with pytest.raises(ValueError, match=r"starting vertex \(vertex 0\) has no out-edges"):
            call()
