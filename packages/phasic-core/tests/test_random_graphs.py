"""Random small graphs (seeded) against the dense reference.

Tolerances: moments are k! alpha U^k 1 computed two ways (elimination vs dense LU);
both are backward stable and these graphs are well conditioned (rates 0.1-3), so
agreement to 1e-9 relative is expected while real bugs show up as O(1) errors.
The PDF bar is the project's acceptance bar: relative error <= 1e-8 wherever pdf >= 1e-12 * max,
including small t. The kernel truncates the CDF series at a stated relative bound
of 1e-10, so CDFs are compared at 1.5e-10 relative (plus 1e-14 absolute for the
reference's own expm rounding near F = 0).
"""

from __future__ import annotations

import core_reference as reference
import numpy as np
import pytest
from core_graphs import random_graph

SEEDS = range(12)
MOMENT_RTOL = 1e-9
PDF_RTOL = 1e-8
CDF_RTOL = 1.5e-10
CDF_ATOL = 1e-14
FACTORS = np.array([0.0, 1e-4, 1e-3, 0.01, 0.05, 0.1, 0.3, 0.6, 1.0, 1.5, 2.5, 4.0, 8.0])


@pytest.mark.parametrize("cyclic", [False, True], ids=["acyclic", "cyclic"])
@pytest.mark.parametrize("seed", SEEDS)
def test_continuous(seed: int, cyclic: bool) -> None:
    case = random_graph(seed, cyclic=cyclic)
    g, theta = case.graph, case.theta
    np.testing.assert_allclose(g.moments(4, theta=theta), reference.moments(g, theta, 4),
                               rtol=MOMENT_RTOL)
    rng = np.random.default_rng(seed + 1000)
    rewards = rng.uniform(0.0, 2.0, g.vertices_length()) * (rng.random(g.vertices_length()) < 0.8)
    np.testing.assert_allclose(g.moments(3, rewards, theta=theta),
                               reference.moments(g, theta, 3, rewards), rtol=MOMENT_RTOL)

    mean = reference.moments(g, theta, 1)[0]
    t = FACTORS * mean
    ref = reference.pdf(g, theta, t)
    got = g.pdf(t, theta=theta)
    mask = ref >= 1e-12 * ref.max()
    np.testing.assert_allclose(got[mask], ref[mask], rtol=PDF_RTOL)
    assert np.all(np.abs(got[~mask]) <= 1e-11 * ref.max())
    np.testing.assert_allclose(g.cdf(t, theta=theta), reference.cdf(g, theta, t), rtol=CDF_RTOL,
                               atol=CDF_ATOL)


@pytest.mark.parametrize("cyclic", [False, True], ids=["acyclic", "cyclic"])
@pytest.mark.parametrize("seed", SEEDS)
def test_discrete(seed: int, cyclic: bool) -> None:
    case = random_graph(seed, cyclic=cyclic, discrete=True)
    g, theta = case.graph, case.theta
    np.testing.assert_allclose(g.moments(3, theta=theta), reference.moments(g, theta, 3),
                               rtol=MOMENT_RTOL)
    rng = np.random.default_rng(seed + 2000)
    rewards = rng.uniform(0.0, 2.0, g.vertices_length())
    np.testing.assert_allclose(g.moments(2, rewards, theta=theta),
                               reference.moments(g, theta, 2, rewards), rtol=MOMENT_RTOL)
    k = np.arange(0, 40)
    ref = reference.pmf(g, theta, k)
    got = g.pmf(k, theta=theta)
    # matrix powers of a substochastic matrix: a few ulps per step, relative
    mask = ref >= 1e-12 * ref.max()
    np.testing.assert_allclose(got[mask], ref[mask], rtol=1e-10)
    np.testing.assert_allclose(g.cdf(k, theta=theta), reference.cdf(g, theta, k), rtol=0,
                               atol=1e-12)


def test_sizes_cover_the_range() -> None:
    sizes = {random_graph(s, cyclic=c).graph.vertices_length() - 1
             for s in SEEDS for c in (False, True)}
    params = {random_graph(s, cyclic=True).graph.param_length() for s in SEEDS}
    assert min(sizes) <= 8 and max(sizes) >= 20  # 2-30 states drawn
    assert len(params) >= 3  # several parameter counts


@pytest.mark.parametrize("n_states", [2, 30])
def test_extreme_sizes(n_states: int) -> None:
    case = random_graph(77, cyclic=True, n_states=n_states, n_params=3)
    g, theta = case.graph, case.theta
    np.testing.assert_allclose(g.moments(3, theta=theta), reference.moments(g, theta, 3),
                               rtol=MOMENT_RTOL)
    t = FACTORS * reference.moments(g, theta, 1)[0]
    ref = reference.pdf(g, theta, t)
    mask = ref >= 1e-12 * ref.max()
    np.testing.assert_allclose(g.pdf(t, theta=theta)[mask], ref[mask], rtol=PDF_RTOL)
