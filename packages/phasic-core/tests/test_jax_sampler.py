"""phasic.sample (the key-driven C++ sampler) and Graph.sample with reward matrices.

Exactness: the Philox generator is checked against the published known-answer
vectors of Salmon et al. (Random123), and whole draws of one-state chains against
draws computed here, in Python, from that generator. Distributions: every check has
a fixed key or seed, so it is deterministic; thresholds are what a correct sampler
meets with high probability and a wrong one (a rate off by a few percent, a path
mixed between reward rows) fails:
- sample means (and variances, with their sd from the exact 4th moment) within 5
  standard errors of the exact values (two-sided 5-sigma: p ~ 6e-7 per check);
- sample covariances within 5 standard errors, the standard error of each entry
  estimated from the draws themselves (N = 100,000 makes that estimate tight);
- the Kolmogorov-Smirnov distance to the exact CDF below 1.95 / sqrt(N) (the 0.1%
  critical value); a chi-square statistic of the discrete counts below the 0.1%
  quantile of its distribution.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from core_graphs import cyclic_graph
from scipy import stats

import phasic
from phasic import Graph, models

N = 100_000
KEY = jax.random.key(2026)
M32 = 0xFFFFFFFF


def philox4x32(ctr: list[int], key: list[int]) -> list[int]:
    """Philox-4x32-10 written from the published algorithm, for the checks below."""
    c, k = list(ctr), list(key)
    for _ in range(10):
        p0, p1 = 0xD2511F53 * c[0], 0xCD9E8D57 * c[2]
        c = [((p1 >> 32) ^ c[1] ^ k[0]) & M32, p1 & M32, ((p0 >> 32) ^ c[3] ^ k[1]) & M32,
             p0 & M32]
        k = [(k[0] + 0x9E3779B9) & M32, (k[1] + 0xBB67AE85) & M32]
    return c


def test_philox_matches_the_published_known_answers() -> None:
    assert philox4x32([0] * 4, [0, 0]) == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]
    assert philox4x32([M32] * 4, [M32, M32]) == [0x408F276D, 0x41C83B0E, 0xA20BC7C6,
                                                 0x6D5451FD]
    pi = philox4x32([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], [0xA4093822, 0x299F31D0])
    assert pi == [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]


def one_state(discrete: bool) -> Graph:
    """start -> a -> absorbing, the exit weight theta[0] (a rate, or a probability)."""
    g = Graph(1, discrete=discrete)
    a, b = g.find_or_create_vertex([1]), g.find_or_create_vertex([2])
    g.starting_vertex().add_edge(a, 1.0)
    a.add_edge(b, [1.0])
    return g


def uniform_open(hi: int, lo: int) -> float:
    """(0, 1] from two words, as the kernel: the top 53 bits of hi:lo, plus one."""
    return (((hi << 32 | lo) >> 11) + 1) * 2.0 ** -53


@pytest.mark.parametrize("discrete", [False, True])
def test_draws_equal_the_generator_by_hand(discrete: bool) -> None:
    rate = 0.37
    g = one_state(discrete)
    got = np.asarray(phasic.sample(g, jnp.array([rate]), KEY, 20, discrete=discrete))
    words = [int(w) for w in jax.random.bits(KEY, (2,), jnp.uint32)]
    want = []
    for i in range(20):  # draw i's first visit is block (i, 0, 1, 0)
        u = uniform_open(*philox4x32([i, 0, 1, 0], words)[:2])
        want.append(1 + np.floor(np.log(u) / np.log1p(-rate)) if discrete
                    else -np.log(u) / rate)
    np.testing.assert_allclose(got, want, rtol=1e-15, atol=0)


def lineages(g: Graph) -> np.ndarray:
    """The total-branch-length reward: the number of lineages in each state."""
    return g.states().sum(axis=1).astype(float)


def z_mean(x: np.ndarray, mean: float, var: float) -> float:
    return abs(x.mean() - mean) / np.sqrt(var / x.size)


def test_kingman_total_length_moments_and_closed_form_cdf() -> None:
    n = 7
    g = models.kingman(n)
    r = lineages(g)
    y = np.asarray(phasic.sample(g, jnp.array([1.0]), KEY, N, rewards=r))
    m = np.asarray(phasic.compute_moments_ffi(g, jnp.array([1.0]), 4, rewards=r))
    var = m[1] - m[0] ** 2
    fourth = m[3] - 4 * m[2] * m[0] + 6 * m[1] * m[0] ** 2 - 3 * m[0] ** 4
    assert z_mean(y, m[0], var) < 5
    assert abs(y.var() - var) / np.sqrt((fourth - var ** 2) / N) < 5
    # total branch length at theta = 1: the maximum of n - 1 Exp(1/2) times
    ks = stats.kstest(y, lambda x: (1 - np.exp(-x / 2)) ** (n - 1)).statistic
    assert ks < 1.95 / np.sqrt(N)


def test_cyclic_graph_matches_the_exact_cdf() -> None:
    g, theta = cyclic_graph()
    t = np.asarray(phasic.sample(g, theta, KEY, N))
    assert stats.kstest(t, lambda x: g.cdf(x, theta=theta)).statistic < 1.95 / np.sqrt(N)


def wide_graph() -> Graph:
    """Ten start edges and a hub with twelve out-edges: the jump tables' binary search."""
    g = Graph(1)
    hub = g.find_or_create_vertex([100])
    for k in range(1, 11):
        a = g.find_or_create_vertex([k])
        g.starting_vertex().add_edge(a, float(k))
        a.add_edge(hub, [float(k)])
    for j in range(1, 13):
        c, end = g.find_or_create_vertex([200 + j]), g.find_or_create_vertex([300 + j])
        hub.add_edge(c, float(j))
        c.add_edge(end, [0.5 * j])
    return g


def test_many_out_edges_match_the_exact_cdf() -> None:
    g, theta = wide_graph(), np.array([0.7])
    t = np.asarray(phasic.sample(g, theta, KEY, N))
    assert stats.kstest(t, lambda x: g.cdf(x, theta=theta)).statistic < 1.95 / np.sqrt(N)


def discrete_graph() -> tuple[Graph, np.ndarray]:
    """A discrete chain with implicit self-loops, a cycle and a defect."""
    g = Graph(1, discrete=True)
    a, b, c = (g.find_or_create_vertex([k]) for k in range(1, 4))
    g.starting_vertex().add_edge(a, 0.9)
    g.starting_vertex().add_edge(c, 0.1)  # T = 0 with probability 0.1
    a.add_edge(b, [0.5])
    b.add_edge(a, 0.2)
    b.add_edge(c, 0.6)
    return g, np.array([0.9])


def chi_square_ok(draws: np.ndarray, pmf: np.ndarray) -> bool:
    """Counts of 0..K-1 and the tail against N * pmf; the statistic below its 0.1% point.
    A value of probability 0 must never be drawn."""
    k = pmf.size
    counts = np.bincount(np.minimum(draws.astype(int), k), minlength=k + 1)
    expected = draws.size * np.append(pmf, 1 - pmf.sum())
    possible = expected > 0
    if counts[~possible].any():
        return False
    stat = float(((counts - expected)[possible] ** 2 / expected[possible]).sum())
    return stat < stats.chi2.ppf(0.999, df=possible.sum() - 1)


def test_discrete_graph_matches_the_exact_pmf() -> None:
    g, theta = discrete_graph()
    t = np.asarray(phasic.sample(g, theta, KEY, N, discrete=True))
    assert np.all(t == np.round(t))
    pmf = np.asarray(g.pmf(np.arange(25), theta=theta))
    assert chi_square_ok(t, pmf)


@pytest.mark.parametrize("sampler", ["phasic.sample", "Graph.sample"])
def test_discrete_reward_matrix_matches_moments_and_covariance(sampler: str) -> None:
    g, theta = discrete_graph()
    rows = np.array([[0, 1, 0, 0], [0, 2, 3, 0], [0, 1, 1, 7]], dtype=float)
    if sampler == "phasic.sample":
        y = np.asarray(phasic.sample(g, theta, KEY, N, rewards=rows, discrete=True))
    else:
        y = g.sample(N, theta=theta, rewards=rows, seed=4)
    assert y.shape == (N, 3) and np.all(y == np.round(y))
    mean = [float(phasic.compute_moments_ffi(g, theta, 1, rewards=r)[0]) for r in rows]
    assert_covariance(y, np.array(mean), np.asarray(phasic.compute_covariance_ffi(g, theta,
                                                                                  rows)))


def test_graph_sample_discrete_matches_the_exact_pmf() -> None:
    g, theta = discrete_graph()
    assert chi_square_ok(g.sample(N, theta=theta, seed=3), np.asarray(g.pmf(np.arange(25),
                                                                           theta=theta)))


def sfs_rows(g: Graph, n: int) -> np.ndarray:
    return np.stack([models.kingman_sfs_rewards(g, i) for i in range(1, n)])


def assert_covariance(y: np.ndarray, exact_mean: np.ndarray, exact_cov: np.ndarray) -> None:
    """Means and covariances of the columns of y within 5 standard errors."""
    centered = y - y.mean(axis=0)
    for i in range(y.shape[1]):
        assert z_mean(y[:, i], exact_mean[i], exact_cov[i, i]) < 5, i
        for j in range(i, y.shape[1]):
            prod = centered[:, i] * centered[:, j]
            se = prod.std() / np.sqrt(y.shape[0])
            assert abs(prod.mean() - exact_cov[i, j]) < 5 * se, (i, j)


def test_reward_matrix_gives_the_totals_of_one_path() -> None:
    n = 5
    g = models.kingman(n)
    theta = jnp.array([0.8])
    rows = np.vstack([sfs_rows(g, n), lineages(g)])  # last row: the sum of the others
    y = np.asarray(phasic.sample(g, theta, KEY, (N // 4, 4), rewards=rows))
    assert y.shape == (N // 4, 4, n)
    y = y.reshape(-1, n)
    np.testing.assert_allclose(y[:, :-1].sum(axis=1), y[:, -1], rtol=1e-12)
    mean = [float(phasic.compute_moments_ffi(g, theta, 1, rewards=r)[0]) for r in rows]
    assert_covariance(y, np.array(mean), np.asarray(phasic.compute_covariance_ffi(g, theta,
                                                                                  rows)))


def test_graph_sample_reward_matrix() -> None:
    n = 5
    g = models.kingman(n)
    rows = np.vstack([sfs_rows(g, n), lineages(g)])
    y = g.sample(N, theta=[0.8], rewards=rows, seed=9, validate_rewards=False)
    assert y.shape == (N, n)
    np.testing.assert_allclose(y[:, :-1].sum(axis=1), y[:, -1], rtol=1e-12)
    mean = np.array([g.expectation(r, theta=[0.8]) for r in rows])
    assert_covariance(y, mean, np.asarray(phasic.compute_covariance_ffi(g, jnp.array([0.8]),
                                                                        rows)))
    one = g.sample(10, theta=[0.8], rewards=rows[0], seed=9)
    assert one.shape == (10,)


def test_shapes_keys_jit_and_vmap() -> None:
    g, theta = cyclic_graph()
    a = phasic.sample(g, theta, KEY, (3, 4))
    assert a.shape == (3, 4) and phasic.sample(g, theta, KEY, ()).shape == ()
    assert phasic.sample(g, theta, KEY, 0).shape == (0,)
    # a typed key and its raw data are the same key
    np.testing.assert_array_equal(a, phasic.sample(g, theta, jax.random.key_data(KEY), (3, 4)))
    np.testing.assert_array_equal(a, jax.jit(lambda k: phasic.sample(g, theta, k, (3, 4)))(KEY))
    np.testing.assert_array_equal(a.ravel()[:5], phasic.sample(g, theta, KEY, 12)[:5])
    keys = jax.random.split(KEY, 5)
    batched = jax.jit(jax.vmap(lambda k: phasic.sample(g, theta, k, 7)))(keys)
    np.testing.assert_array_equal(batched, np.stack([phasic.sample(g, theta, k, 7)
                                                     for k in keys]))
    assert not np.array_equal(batched[0], batched[1])
    thetas = jnp.array([[1.3, 0.8], [0.5, 2.0], [3.0, 0.1]])
    over_theta = jax.vmap(lambda th: phasic.sample(g, th, KEY, 9))(thetas)
    np.testing.assert_array_equal(over_theta, np.stack([phasic.sample(g, th, KEY, 9)
                                                        for th in thetas]))
    r = np.stack([np.arange(g.vertices_length()) * s for s in (0.5, 1.0)])
    over_rewards = jax.vmap(lambda rw: phasic.sample(g, theta, KEY, 4, rewards=rw))(r)
    np.testing.assert_array_equal(over_rewards, np.stack([phasic.sample(g, theta, KEY, 4,
                                                                        rewards=rw)
                                                          for rw in r]))


def test_same_draws_on_one_and_two_threads() -> None:
    g = models.kingman(8)
    r = np.vstack([lineages(g), sfs_rows(g, 8)[0]])
    core = phasic._ext.core()
    before = core.get_num_threads()
    try:
        core.set_num_threads(1)
        one = np.asarray(phasic.sample(g, jnp.array([1.0]), KEY, 20_000, rewards=r))
        core.set_num_threads(2)
        two = np.asarray(phasic.sample(g, jnp.array([1.0]), KEY, 20_000, rewards=r))
    finally:
        core.set_num_threads(before)
    np.testing.assert_array_equal(one, two)


DEVICES_SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    import phasic
    from jax.sharding import Mesh, NamedSharding, PartitionSpec
    from phasic import models
    g = models.kingman(6)
    keys = jax.random.split(jax.random.key(7), 8)
    f = jax.jit(jax.vmap(lambda k: phasic.sample(g, jnp.array([1.0]), k, 50)))
    mesh = Mesh(np.array(jax.devices()), ("d",))
    sharded = jax.device_put(keys, NamedSharding(mesh, PartitionSpec("d")))
    draws = np.asarray(f(sharded))
    per_device = jax.jit(jax.shard_map(jax.vmap(lambda k: phasic.sample(g, jnp.array([1.0]), k,
                                                                        50)),
                                       mesh=mesh, in_specs=PartitionSpec("d"),
                                       out_specs=PartitionSpec("d")))
    assert np.array_equal(np.asarray(per_device(sharded)), draws)
    print(json.dumps({"devices": len(jax.devices()), "draws": draws.tolist()}))
""")


def test_same_draws_on_one_and_four_devices(tmp_path: pathlib.Path) -> None:
    results = []
    for count in (1, 4):
        env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={count}",
                   JAX_PLATFORMS="cpu")
        proc = subprocess.run([sys.executable, "-c", DEVICES_SCRIPT], env=env, timeout=300,
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-3000:]
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert [r["devices"] for r in results] == [1, 4]
    assert results[0]["draws"] == results[1]["draws"]


def test_gradient_in_theta_is_a_clear_error() -> None:
    g = models.kingman(4)

    def mean_draw(th):
        return phasic.sample(g, th, KEY, 10).mean()

    with pytest.raises(TypeError, match="not differentiable in theta.*stop_gradient"):
        jax.grad(mean_draw)(jnp.array([1.0]))
    with pytest.raises(TypeError, match="not differentiable in rewards"):
        jax.grad(lambda r: phasic.sample(g, jnp.array([1.0]), KEY, 10, rewards=r).mean())(
            jnp.ones(g.vertices_length()))
    # treated as data, the draws pass through a gradient of something else
    grad = jax.grad(lambda th, x: x * phasic.sample(g, jax.lax.stop_gradient(th), KEY, 3).sum(),
                    argnums=1)(jnp.array([1.0]), 2.0)
    assert float(grad) == pytest.approx(float(phasic.sample(g, jnp.array([1.0]), KEY, 3).sum()))


def test_draws_stop_on_a_chain_that_almost_never_ends() -> None:
    g = Graph(1)  # a <-> b at rate 1, absorption at rate 1e-9 per visit of b
    a, b, c = (g.find_or_create_vertex([k]) for k in (1, 2, 3))
    g.starting_vertex().add_edge(a, 1.0)
    a.add_edge(b, 1.0)
    b.add_edge(a, 1.0)
    b.add_edge(c, 1e-9)
    with pytest.raises(Exception, match="passed 100000000 visits without reaching absorption"):
        np.asarray(phasic.sample(g, jnp.zeros(0), KEY, 2))


@pytest.mark.parametrize("key, rewards, out, attrs, match", [
    (np.zeros(3, np.uint32), np.ones((1, 6)), (4, 1), {}, r"key has shape \(3,\).*\(2,\)"),
    (np.zeros(2, np.uint32), np.ones(6), (4, 1), {}, r"rewards has shape \(6,\).*rows, vertices"),
    (np.zeros(2, np.uint32), np.ones((2, 6)), (4, 1), {},
     r"draws output shape \(4, 1\) should be .*\(draws, 2\)"),
    (np.zeros(2, np.uint32), np.ones((1, 6)), (4, 1), {"discrete": True},
     r"continuous but discrete=True"),
    (np.zeros(2, np.uint32), np.ones((1, 6)), (4, 1), {"digest": "0" * 64}, r"structure: "),
])
def test_ffi_target_checks_its_shapes(key, rewards, out, attrs, match) -> None:
    """The handler's own checks (the Python wrapper never sends such calls)."""
    from phasic.ffi import _ensure_registered, structure_key

    text = models.kingman(4).to_json()  # 6 vertices
    _ensure_registered()
    call = jax.ffi.ffi_call("phasic_sample", jax.ShapeDtypeStruct(out, jnp.float64))
    kw = {"digest": structure_key(text), "discrete": False, **attrs}
    with pytest.raises(Exception, match=match):
        np.asarray(call(jnp.array([1.0]), jnp.asarray(key), jnp.asarray(rewards), **kw))
