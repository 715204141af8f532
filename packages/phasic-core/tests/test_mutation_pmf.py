"""Mutation counts: compute_mutation_pmf_ffi and Graph.mutation_pmf.

K | Y ~ Poisson(mu Y), Y the reward-weighted time. References, none of which uses the
kernel's recursion:
- Tavare's closed form for the number of segregating sites under Kingman, evaluated
  in exact rational arithmetic;
- a dense expanded chain whose states are (vertex, mutations so far): each mutation
  moves one count up, absorption at count c is the event K = c, and one dense linear
  solve gives every P(K = c) at once (continuous: mutations at rate mu r_i; discrete:
  Poisson(mu r_i) mutations per visit, from scipy.stats.poisson);
- msprime's coalescent with infinite-sites mutations for the SFS class counts;
- central finite differences of the dense reference for the derivatives.
"""

from __future__ import annotations

import math
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from core_graphs import with_defect
from core_reference import Dense, dense, finite_difference

import phasic
from phasic import Graph, models


def tavare(n: int, theta: Fraction, kmax: int) -> np.ndarray:
    """P(S = k), k = 0..kmax, for n samples (Tavare 1984), exact rationals rounded once."""
    return np.array([float(sum(
        (-1) ** i * math.comb(n - 1, i - 1) * Fraction(i - 1) / (theta + i - 1)
        * (theta / (theta + i - 1)) ** k for i in range(2, n + 1))) for k in range(kmax + 1)])


def expanded_chain(d: Dense, r: np.ndarray, mu: float, kmax: int) -> np.ndarray:
    """P(K = k), k = 0..kmax, from the dense chain on (transient vertex, count) pairs."""
    n, c = len(d.alpha), kmax + 1
    size = n * c
    inner = np.zeros((size, size))  # continuous: rates; discrete: probabilities
    into = np.zeros((size, c))  # into "absorbed with count k"
    out = np.zeros(size)  # continuous: total rate out of each state
    for i in range(n):
        for k in range(c):
            s = i * c + k
            if d.discrete:
                # this visit's Poisson count, then one step of P (or absorption)
                for j in range(c - k):
                    p = scipy.stats.poisson.pmf(j, mu * r[i]) if mu * r[i] > 0 else float(j == 0)
                    inner[s, np.arange(n) * c + k + j] += p * d.T[i]
                    into[s, k + j] += p * d.exit[i]
            else:
                inner[s, np.arange(n) * c + k] += np.where(np.arange(n) == i, 0.0, d.T[i])
                into[s, k] += d.exit[i]
                if k + 1 < c:
                    inner[s, s + 1] += mu * r[i]
                out[s] = -d.T[i, i] + mu * r[i]
    if d.discrete:
        absorbed = np.linalg.solve(np.eye(size) - inner, into)
    else:
        absorbed = np.linalg.solve(np.diag(out) - inner, into)
    start = np.zeros(size)
    start[np.arange(n) * c] = d.alpha
    pmf = start @ absorbed
    pmf[0] += d.defect
    return pmf


def reference(graph: Graph, theta: np.ndarray, mu: float, rewards: np.ndarray,
              kmax: int) -> np.ndarray:
    """The expanded-chain pmf for each row of rewards, shape (R, kmax + 1)."""
    d = dense(graph, theta)
    return np.stack([expanded_chain(d, row[d.transient], mu, kmax) for row in rewards])


def random_rewards(seed: int, vertices: int, rows: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed + 2000)
    r = rng.uniform(0.0, 2.0, size=(rows, vertices))
    r[rng.random(r.shape) < 0.3] = 0.0  # zero rewards are allowed
    return r


@pytest.mark.parametrize("n", range(2, 11))
def test_segregating_sites_match_tavare(n: int) -> None:
    # theta = [c] is the pair-coalescence rate; with mutation rate mu per unit of branch
    # length, Tavare's theta is 2 mu / c (E[S] = theta sum_{i<n} 1/i).
    g = models.kingman(n)
    length = models.kingman_total_length_rewards(g)
    for c, mu in ((1.0, Fraction(3, 4)), (2.0, Fraction(5, 2))):
        got = np.asarray(phasic.compute_mutation_pmf_ffi(g, jnp.array([c]), float(mu), length, 40))
        want = tavare(n, 2 * mu / Fraction(c), 40)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
        np.testing.assert_array_equal(g.mutation_pmf(float(mu), length, kmax=40, theta=[c]), got)


GRAPHS = [(seed, cyclic, discrete) for seed in (1, 2) for cyclic in (False, True)
          for discrete in (False, True)]


@pytest.mark.parametrize("seed,cyclic,discrete", GRAPHS)
def test_matches_dense_expanded_chain(seed: int, cyclic: bool, discrete: bool) -> None:
    g, theta = with_defect(seed, cyclic=cyclic, discrete=discrete)
    rewards = random_rewards(seed, g.vertices_length())
    kmax, mu = 12, 0.8
    want = reference(g, theta, mu, rewards, kmax)
    got = np.asarray(phasic.compute_mutation_pmf_ffi(g, jnp.asarray(theta), mu, rewards, kmax))
    assert got.shape == (3, kmax + 1)
    np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-15)
    assert dense(g, theta).defect > 0 and np.all(got[:, 0] > dense(g, theta).defect)
    # one vector gives one row; the graph method agrees exactly
    one = np.asarray(phasic.compute_mutation_pmf_ffi(g, jnp.asarray(theta), mu, rewards[1], kmax))
    np.testing.assert_array_equal(one, got[1])
    np.testing.assert_array_equal(g.mutation_pmf(mu, rewards, kmax=kmax, theta=theta), got)


def test_rewards_none_is_the_time_and_tail_is_the_overflow() -> None:
    g = models.two_island(3)
    theta = np.array([1.0, 0.4])
    ones = np.ones(g.vertices_length())
    got = g.mutation_pmf(0.6, kmax=25, theta=theta)
    np.testing.assert_array_equal(got, g.mutation_pmf(0.6, ones, kmax=25, theta=theta))
    want = reference(g, theta, 0.6, ones[None], 25)[0]
    np.testing.assert_allclose(got, want, rtol=1e-11)
    # not renormalized: 1 - sum is P(K > kmax), small but positive, and it shrinks with kmax
    tail = 1.0 - got.sum()
    assert 1e-12 < tail < 1e-2
    longer = g.mutation_pmf(0.6, kmax=60, theta=theta)
    np.testing.assert_allclose(longer[:26], got, rtol=1e-13)
    assert 0.0 <= tail - longer[26:].sum() < 1e-12  # what is left is P(K > 60)
    # the mean from the pmf is mu E[Y]
    k = np.arange(61)
    np.testing.assert_allclose((k * longer).sum(), 0.6 * g.expectation(theta=theta), rtol=1e-9)


def test_zero_rate_and_zero_kmax() -> None:
    g, theta = with_defect(3, cyclic=True, discrete=False)
    r = random_rewards(3, g.vertices_length(), rows=1)
    np.testing.assert_allclose(g.mutation_pmf(0.0, r[0], kmax=4, theta=theta),
                               [1.0, 0, 0, 0, 0], rtol=1e-14, atol=1e-300)
    p0 = g.mutation_pmf(1.3, r, kmax=0, theta=theta)
    assert p0.shape == (1, 1)
    np.testing.assert_allclose(p0[:, 0], reference(g, theta, 1.3, r, 0)[:, 0], rtol=1e-12)


def test_no_transient_vertex_means_no_mutation() -> None:
    g = Graph(1)  # the start leads straight into an absorbing vertex: Y = 0
    g.starting_vertex().add_edge(g.find_or_create_vertex((1,)), 1.0)
    np.testing.assert_array_equal(g.mutation_pmf(0.5, kmax=3), [1.0, 0.0, 0.0, 0.0])
    got = phasic.compute_mutation_pmf_ffi(g, jnp.zeros(0), 0.5, np.ones((2, 2)), 2)
    np.testing.assert_array_equal(np.asarray(got), [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])


def test_stored_theta() -> None:
    g = models.kingman(4)
    g.update_weights([1.5])
    np.testing.assert_array_equal(g.mutation_pmf(0.5, kmax=6),
                                  g.mutation_pmf(0.5, kmax=6, theta=[1.5]))


@pytest.mark.parametrize("seed,cyclic,discrete", [(4, True, False), (5, False, False),
                                                  (6, True, True), (7, False, True)])
def test_gradients_in_theta_and_rate_match_finite_differences(
        seed: int, cyclic: bool, discrete: bool) -> None:
    g, theta = with_defect(seed, cyclic=cyclic, discrete=discrete)
    rewards = random_rewards(seed, g.vertices_length(), rows=2)
    kmax, mu = 8, 0.7
    p = len(theta)

    def pmf(th, rate):
        return phasic.compute_mutation_pmf_ffi(g, th, rate, rewards, kmax)

    jt, jm = jax.jacfwd(pmf, argnums=(0, 1))(jnp.asarray(theta), mu)
    both = np.concatenate([np.asarray(jt), np.asarray(jm)[..., None]], axis=-1)
    fd = finite_difference(lambda x: reference(g, x[:p], x[p], rewards, kmax),
                           np.append(theta, mu))
    scale = np.abs(fd).max()
    np.testing.assert_allclose(both, fd, rtol=1e-6, atol=1e-6 * scale)
    rt, rm = jax.jacrev(pmf, argnums=(0, 1))(jnp.asarray(theta), mu)
    np.testing.assert_allclose(np.asarray(rt), np.asarray(jt), rtol=1e-14, atol=1e-16 * scale)
    np.testing.assert_allclose(np.asarray(rm), np.asarray(jm), rtol=1e-14, atol=1e-16 * scale)
    grad = jax.grad(lambda rate: pmf(jnp.asarray(theta), rate)[1, 3])(mu)
    np.testing.assert_allclose(float(grad), both[1, 3, p], rtol=1e-14)


def test_jit_vmap_over_theta_rate_and_reward_batches() -> None:
    g = models.kingman(5)
    sfs = np.stack([models.kingman_sfs_rewards(g, i) for i in range(1, 5)])
    f = jax.jit(lambda th, mu, r: phasic.compute_mutation_pmf_ffi(g, th, mu, r, 10))
    thetas = jnp.array([[1.0], [2.0], [0.5]])
    rates = jnp.array([0.3, 1.0, 2.5])
    many = jax.vmap(f, in_axes=(0, 0, None))(thetas, rates, sfs)
    assert many.shape == (3, 4, 11)
    for b in range(3):
        np.testing.assert_array_equal(np.asarray(many[b]),
                                      np.asarray(f(thetas[b], rates[b], sfs)))
        np.testing.assert_allclose(
            np.asarray(many[b]), reference(g, np.asarray(thetas[b]), float(rates[b]), sfs, 10),
            rtol=1e-11, atol=1e-16)
    per_class = jax.vmap(f, in_axes=(None, None, 0))(thetas[0], 0.4, sfs)
    np.testing.assert_array_equal(np.asarray(per_class), np.asarray(f(thetas[0], 0.4, sfs)))
    grads = jax.vmap(jax.grad(lambda mu: f(thetas[0], mu, sfs)[2, 1]))(rates)
    fd = finite_difference(lambda x: reference(g, np.array([1.0]), x[0], sfs, 10)[2, 1],
                           np.array([1.0]))
    np.testing.assert_allclose(float(grads[1]), fd[0], rtol=1e-6)


def test_shard_map_over_thetas_with_gradients() -> None:
    from jax.sharding import Mesh, PartitionSpec

    g = models.kingman(5)
    length = models.kingman_total_length_rewards(g)
    mesh = Mesh(np.array(jax.devices()), ("d",))
    thetas = jnp.linspace(0.5, 2.0, 2 * len(jax.devices()))[:, None]

    def pmfs(th: jax.Array, mu: jax.Array) -> jax.Array:
        return jax.vmap(lambda t: phasic.compute_mutation_pmf_ffi(g, t, mu, length, 5))(th)

    sharded = jax.shard_map(pmfs, mesh=mesh, in_specs=(PartitionSpec("d"), PartitionSpec()),
                            out_specs=PartitionSpec("d"))
    np.testing.assert_array_equal(np.asarray(jax.jit(sharded)(thetas, 0.7)),
                                  np.asarray(pmfs(thetas, 0.7)))
    loss = jax.jit(jax.grad(lambda th, mu: sharded(th, mu)[:, 2].sum(), argnums=(0, 1)))
    want = jax.grad(lambda th, mu: pmfs(th, mu)[:, 2].sum(), argnums=(0, 1))(thetas, 0.7)
    for got, ref in zip(loss(thetas, 0.7), want, strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(ref), rtol=1e-13)


def pooled_chi_square(observed: np.ndarray, pmf: np.ndarray) -> float:
    """The p-value of counts `observed` (one per draw) against `pmf` on 0..kmax, the
    bins from the right pooled until each expects >= 5 draws (the last bin holds the
    tail beyond kmax too)."""
    size = len(observed)
    expected = size * np.append(pmf, max(0.0, 1.0 - pmf.sum()))
    seen = np.bincount(np.minimum(observed, len(pmf)), minlength=len(pmf) + 1).astype(float)
    exp_bins, obs_bins = [], []
    e = o = 0.0
    for k in range(len(expected) - 1, -1, -1):
        e, o = e + expected[k], o + seen[k]
        if e >= 5.0:
            exp_bins.append(e)
            obs_bins.append(o)
            e = o = 0.0
    exp_bins[-1] += e  # the leftover (lowest counts) joins the last bin formed
    obs_bins[-1] += o
    return float(scipy.stats.chisquare(obs_bins, exp_bins).pvalue)


def test_sfs_class_counts_match_msprime() -> None:
    import msprime

    n, mu, kmax, draws = 6, 0.5, 20, 5000
    g = models.kingman(n)
    sfs = np.stack([models.kingman_sfs_rewards(g, i) for i in range(1, n)])
    pmf = np.asarray(phasic.compute_mutation_pmf_ffi(g, jnp.array([1.0]), mu, sfs, kmax))
    # haploid samples, population size 1: each pair coalesces at rate 1 (theta = [1]);
    # infinite sites, mu per unit of branch length
    seeds = np.random.default_rng(11).integers(1, 2**31, size=draws)
    trees = msprime.sim_ancestry(samples=n, ploidy=1, population_size=1, random_seed=12,
                                 num_replicates=draws)
    counts = np.array([
        msprime.sim_mutations(ts, rate=mu, discrete_genome=False, random_seed=int(seed))
        .allele_frequency_spectrum(polarised=True, span_normalise=False)[1:n]
        for ts, seed in zip(trees, seeds, strict=True)]).astype(int)
    for i in range(n - 1):
        assert pooled_chi_square(counts[:, i], pmf[i]) > 1e-3, f"class {i + 1}"
    # a wrong rate is rejected by the same test (it has power)
    wrong = np.asarray(phasic.compute_mutation_pmf_ffi(g, jnp.array([1.0]), 0.6, sfs, kmax))
    assert pooled_chi_square(counts[:, 0], wrong[0]) < 1e-6


def test_limits_name_the_argument() -> None:
    chain = Graph(1, discrete=True)  # 120 transient vertices in a row
    vs = [chain.find_or_create_vertex((i,)) for i in range(1, 122)]
    chain.starting_vertex().add_edge(vs[0], 1.0)
    for a, b in zip(vs[:-1], vs[1:], strict=True):
        a.add_edge(b, 0.5)
    with pytest.raises(ValueError, match=r"kmax = 100000 on a discrete graph with 120 "
                                         r"transient vertices.*smaller kmax"):
        chain.mutation_pmf(0.1, kmax=100000)
    assert chain.mutation_pmf(0.1, kmax=1000).shape == (1001,)
    g = models.kingman(3)
    with pytest.raises(ValueError, match=r"mutation_rate x rewards\[0, 1\] = .*overflows"):
        g.mutation_pmf(1e300, np.full(g.vertices_length(), 2.0), kmax=3, theta=[1.0])
    with pytest.raises(TypeError, match="mutation_rate must be a number"):
        g.mutation_pmf([0.1, 0.2], kmax=3, theta=[1.0])


def test_rewards_tangent_refused() -> None:
    g = models.kingman(3)
    r = jnp.asarray(models.kingman_total_length_rewards(g))
    with pytest.raises(TypeError, match="rewards received a tangent"):
        jax.grad(lambda r: phasic.compute_mutation_pmf_ffi(g, jnp.array([1.0]), 1.0, r, 3)[1])(r)
