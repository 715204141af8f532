"""Graph.sample: exact simulation checked against the exact moments and CDF.

Every check uses a fixed seed, so each result is deterministic; the tolerances are
what a correct sampler meets with high probability, so a wrong one (a rate off by
a few percent, a misplaced start weight) fails:
- a sample mean within 5 standard errors of E[T] (sd from the exact variance),
  and the same for E[T^2] (its sd from the exact 4th moment);
- the Kolmogorov-Smirnov distance to the exact CDF below 1.95 / sqrt(n), the 0.1%
  critical value (for a discrete T, at each whole step: conservative there).
"""

from __future__ import annotations

import numpy as np
import pytest
from core_graphs import cyclic_graph

from phasic import Graph, models

N = 100_000


def discrete_graph() -> tuple[Graph, np.ndarray]:
    """A discrete chain with self-loops (out-probabilities below 1) and a cycle."""
    g = Graph(1, discrete=True)
    a, b, c = (g.find_or_create_vertex([k]) for k in range(1, 4))
    g.starting_vertex().add_edge(a, 1.0)
    a.add_edge(b, [0.5])  # stays with 1 - 0.5 theta
    b.add_edge(a, 0.2)
    b.add_edge(c, 0.6)
    return g, np.array([0.9])


def assert_moment(samples: np.ndarray, power: int, exact_moments: np.ndarray) -> None:
    mean = float(np.mean(samples ** power))
    exact = exact_moments[power - 1]
    sd = np.sqrt(exact_moments[2 * power - 1] - exact ** 2)
    assert abs(mean - exact) < 5 * sd / np.sqrt(samples.size), (power, mean, exact)


def ks_distance(samples: np.ndarray, cdf) -> float:
    x = np.sort(samples)
    f = np.asarray(cdf(x))
    n = x.size
    upper = np.arange(1, n + 1) / n - f
    lower = f - np.arange(n) / n
    return float(max(upper.max(), lower.max()))


def test_continuous_cyclic_graph_matches_moments_and_cdf():
    g, theta = cyclic_graph()
    x = g.sample(N, theta=theta, seed=11)
    exact = g.moments(4, theta=theta)
    assert_moment(x, 1, exact)
    assert_moment(x, 2, exact)
    assert ks_distance(x, lambda t: g.cdf(t, theta=theta)) < 1.95 / np.sqrt(N)


def test_kingman_with_rewards_matches_reward_moments():
    g = models.kingman(5)
    rewards = np.linspace(0.0, 2.0, g.vertices_length())
    y = g.sample(N, theta=[1.7], rewards=rewards, seed=5)
    exact = g.moments(4, theta=[1.7], rewards=rewards)
    assert_moment(y, 1, exact)
    assert_moment(y, 2, exact)


def test_discrete_graph_counts_whole_steps_and_matches_pmf():
    g, theta = discrete_graph()
    k = g.sample(N, theta=theta, seed=2)
    assert np.all(k == np.round(k)) and k.min() >= 1
    exact = g.moments(4, theta=theta)
    assert_moment(k, 1, exact)
    assert_moment(k, 2, exact)
    steps = np.arange(1, k.max() + 1)
    empirical = np.searchsorted(np.sort(k), steps, side="right") / N
    assert np.max(np.abs(empirical - g.cdf(steps, theta=theta))) < 1.95 / np.sqrt(N)
    freq = np.mean(k == 2)
    p2 = 0.45 * 0.6  # T = 2: a for one step, then b for one step, then absorbed
    assert abs(freq - p2) < 5 * np.sqrt(p2 * (1 - p2) / N)
    assert not np.any(k == 1)  # the chain needs a step in a and one in b at least


def test_start_edge_into_an_absorbing_vertex_is_mass_at_zero():
    """start -> v (0.5), w (0.25), sink (0.25, the defect); w -> v at rate 1, v -> sink at 2.

    T is 0 with probability 1/4, Exp(2) from v, Exp(1) + Exp(2) from w: E[T] = 0.5 * 0.5
    + 0.25 * 1.5 = 0.625 and E[T^2] = 0.5 * 0.5 + 0.25 * 3.5 = 1.125.
    """
    g = Graph(1)
    v, w, sink = (g.find_or_create_vertex([k]) for k in (1, 2, 3))
    for target, weight in ((v, 0.5), (w, 0.25), (sink, 0.25)):
        g.starting_vertex().add_edge(target, weight)
    w.add_edge(v, 1.0)
    v.add_edge(sink, 2.0)
    x = g.sample(N, seed=4)
    assert abs(np.mean(x == 0.0) - 0.25) < 5 * np.sqrt(0.25 * 0.75 / N)
    sd = np.sqrt(1.125 - 0.625 ** 2)
    assert abs(x.mean() - 0.625) < 5 * sd / np.sqrt(N)


def test_start_weights_are_relative():
    g = Graph(1)
    v, w, sink = (g.find_or_create_vertex([k]) for k in (1, 2, 3))
    g.starting_vertex().add_edge(v, 3.0)  # 3/4 of the mass
    g.starting_vertex().add_edge(w, 1.0)
    v.add_edge(sink, 1.0)
    w.add_edge(sink, 4.0)
    x = g.sample(N, seed=9)
    exact = 0.75 * 1.0 + 0.25 * 0.25
    sd = np.sqrt(0.75 * 2.0 + 0.25 * 2 / 16 - exact ** 2)
    assert abs(x.mean() - exact) < 5 * sd / np.sqrt(N)


def test_same_seed_same_samples_and_generator_accepted():
    g, theta = cyclic_graph()
    a = g.sample(1000, theta=theta, seed=3)
    b = g.sample(1000, theta=theta, seed=3)
    c = g.sample(1000, theta=theta, seed=np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    assert g.sample(0, theta=theta).shape == (0,)


@pytest.mark.parametrize("call, error, message", [
    (lambda g, t: g.sample(-1, theta=t), ValueError, "must be >= 0"),
    (lambda g, t: g.sample(2.5, theta=t), TypeError, "must be an int"),
    (lambda g, t: g.sample(True, theta=t), TypeError, "must be an int"),
    (lambda g, t: g.sample(5, theta=t, seed=-2), ValueError, "seed must be None"),
    (lambda g, t: g.sample(5, theta=t, seed="x"), ValueError, "seed must be None"),
    (lambda g, t: g.sample(5, theta=[1.0]), ValueError, "theta must have shape"),
    (lambda g, t: g.sample(5, theta=t, rewards=[1.0, 2.0]), ValueError, r"vertices_length\(\) = \d+ entries, one per vertex"),
    (lambda g, t: g.sample(5, theta=[1.3, -5.0]), ValueError, "weights must be >= 0"),
])
def test_bad_arguments_are_explained(call, error, message):
    g, theta = cyclic_graph()
    with pytest.raises(error, match=message):
        call(g, theta)


def test_a_cycle_without_exit_is_an_error_not_a_hang():
    g = Graph(1)
    a, b, sink = (g.find_or_create_vertex([k]) for k in (1, 2, 3))
    g.starting_vertex().add_edge(a, 1.0)
    a.add_edge(b, 1.0)
    b.add_edge(a, [1.0])  # b -> sink only through theta[0]'s edge below
    b.add_edge(sink, [0.0, 1.0])
    with pytest.raises(ValueError, match="cannot reach an absorbing vertex"):
        g.sample(10, theta=[1.0, 0.0])
    assert g.sample(10, theta=[1.0, 1.0], seed=0).shape == (10,)


def test_zero_total_weight_and_no_start_edge_are_errors():
    g = Graph(1)
    a, sink = g.find_or_create_vertex([1]), g.find_or_create_vertex([2])
    with pytest.raises(ValueError, match="starting vertex has no out-edges"):
        g.sample(3)
    g.starting_vertex().add_edge(a, 1.0)
    a.add_edge(sink, [1.0])
    with pytest.raises(ValueError, match="all have weight 0"):
        g.sample(3, theta=[0.0])


def test_discrete_out_probabilities_above_one_are_an_error():
    g = Graph(1, discrete=True)
    a, sink = g.find_or_create_vertex([1]), g.find_or_create_vertex([2])
    g.starting_vertex().add_edge(a, 1.0)
    a.add_edge(sink, [1.0])
    with pytest.raises(ValueError, match="sum to 2.0 > 1"):
        g.sample(3, theta=[2.0])
