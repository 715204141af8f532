"""Kingman coalescent moments against the closed forms (docs/pages/accuracy.md, Reference closed forms), n = 2..12."""

from __future__ import annotations

import core_reference as reference
import numpy as np
import pytest

from phasic import models

NS = range(2, 13)
# Closed forms are sums of a few rationals; the kernels add O(V) terms of similar
# sign, so the error is a few ulps times V (<= 77 states here): 1e-12 relative.
RTOL = 1e-12


def harmonic(n: int, power: int = 1) -> float:
    return sum(1.0 / i**power for i in range(1, n))


@pytest.fixture(scope="module", params=["core", "callback"])
def builder(request):
    return models.kingman if request.param == "core" else models.kingman_from_callback


@pytest.mark.parametrize("n", NS)
def test_tmrca(builder, n: int) -> None:
    g = builder(n)
    e = 2.0 * (1.0 - 1.0 / n)
    var = sum(4.0 / (k**2 * (k - 1) ** 2) for k in range(2, n + 1))
    assert g.expectation(theta=[1.0]) == pytest.approx(e, rel=RTOL)
    assert g.variance(theta=[1.0]) == pytest.approx(var, rel=RTOL)


@pytest.mark.parametrize("n", NS)
def test_total_branch_length(builder, n: int) -> None:
    g = builder(n)
    r = models.kingman_total_length_rewards(g)
    assert g.expectation(rewards=r, theta=[1.0]) == pytest.approx(2.0 * harmonic(n), rel=RTOL)
    assert g.variance(rewards=r, theta=[1.0]) == pytest.approx(4.0 * harmonic(n, 2), rel=RTOL)


@pytest.mark.parametrize("n", NS)
def test_sfs_expectations(builder, n: int) -> None:
    g = builder(n)
    for i in range(1, n):
        r = models.kingman_sfs_rewards(g, i)
        assert g.expectation(rewards=r, theta=[1.0]) == pytest.approx(2.0 / i, rel=RTOL), i


def test_state_space_sizes() -> None:
    # p(n) - 1 transient states, plus the starting and absorbing vertex
    partitions = {2: 2, 3: 3, 5: 7, 10: 42}
    for n, p in partitions.items():
        assert models.kingman(n).vertices_length() == p + 1
        assert models.kingman_from_callback(n).vertices_length() == p + 1


def test_rate_scales_time() -> None:
    # theta = [c] is time scaled by 1/c: E[T^k] scales by c^-k, f(t) by c f(c t)
    g = models.kingman(6)
    m1 = g.moments(3, theta=[1.0])
    m3 = g.moments(3, theta=[3.0])
    np.testing.assert_allclose(m3, m1 / 3.0 ** np.arange(1, 4), rtol=RTOL)
    t = np.array([0.05, 0.4, 2.0])
    np.testing.assert_allclose(g.pdf(t, theta=[3.0]), 3.0 * g.pdf(3.0 * t, theta=[1.0]), rtol=1e-10)


@pytest.mark.parametrize("n", [3, 8])
def test_pdf_matches_reference(n: int) -> None:
    g = models.kingman(n)
    t = np.array([1e-3, 0.01, 0.05, 0.2, 1.0, 3.0, 10.0])
    ref = reference.pdf(g, [1.0], t)
    # the reference sums a non-negative series (relative precision ~1e-13)
    np.testing.assert_allclose(g.pdf(t, theta=[1.0]), ref, rtol=1e-8)
    # the kernel truncates the CDF series at a stated 1e-10 relative bound
    np.testing.assert_allclose(g.cdf(t, theta=[1.0]), reference.cdf(g, [1.0], t), rtol=1.5e-10,
                               atol=1e-14)


def test_two_island_is_cyclic_and_matches_reference() -> None:
    g = models.two_island(3)
    theta = np.array([1.0, 0.7])
    # (2, 0) -> (1, 1) -> (2, 0) is a cycle
    a = g.find_vertex((2, 0))
    b = g.find_vertex((1, 1))
    assert b in [e.to() for e in a.edges()] and a in [e.to() for e in b.edges()]
    np.testing.assert_allclose(g.moments(4, theta=theta), reference.moments(g, theta, 4),
                               rtol=1e-10)
    t = np.array([1e-3, 0.1, 1.0, 5.0, 30.0])
    np.testing.assert_allclose(g.pdf(t, theta=theta), reference.pdf(g, theta, t), rtol=1e-8)


def test_left_tail_n20() -> None:
    """Where the previous phasic was off by 94-100 % (t = 0.01, 0.05 for n = 20)."""
    g = models.kingman(20)
    t = np.array([0.01, 0.02, 0.05, 0.1, 0.3, 1.0, 3.0, 8.0])
    ref = reference.pdf(g, [1.0], t)
    grid_max = reference.pdf(g, [1.0], np.linspace(0.2, 3.0, 15)).max()
    mask = ref >= 1e-12 * grid_max
    assert mask[2:].all() and mask.sum() >= 6  # the tail points really are tested
    np.testing.assert_allclose(g.pdf(t, theta=[1.0])[mask], ref[mask], rtol=1e-8)
