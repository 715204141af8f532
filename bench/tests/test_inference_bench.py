"""bench/inference.py's references: the eigendecomposition route, the exact gradient,
the simulated data, checked against independent values."""

from __future__ import annotations

import numpy as np
from inference import EigRoute, exact, simulate

from phasic import models
from phasic.reference import kingman_tmrca


def test_simulated_times_have_the_tmrca_mean() -> None:
    t = simulate(6, 40000)
    assert t.shape == (40000,) and np.all(t > 0)
    mean = 2.0 * (1.0 - 1.0 / 6)
    sd = np.sqrt(sum(4.0 / (k * k * (k - 1) ** 2) for k in range(2, 7)))
    assert abs(t.mean() - mean) < 5 * sd / np.sqrt(t.size)
    assert not np.all(np.diff(t) >= 0)  # unsorted, as observations come


def test_eig_route_density_and_gradient_against_the_closed_form() -> None:
    route = EigRoute(models.kingman(5).to_json())
    t = np.array([0.05, 0.4, 1.3, 4.0])
    for theta in (0.8, 1.7):
        f, df = route.density(theta, t)
        ref = kingman_tmrca(5, t, theta=theta, digits=60)
        np.testing.assert_allclose(f, ref.pdf, rtol=1e-11)
        h = 1e-6 * theta
        up = kingman_tmrca(5, t, theta=theta + h, digits=60).pdf
        down = kingman_tmrca(5, t, theta=theta - h, digits=60).pdf
        np.testing.assert_allclose(df, (up - down) / (2 * h), rtol=1e-7)
        ll, grad = route(theta, t)
        assert np.isclose(ll, np.log(ref.pdf).sum(), rtol=1e-12)
        assert np.isclose(grad, np.sum(df / f), rtol=1e-12)


def test_exact_log_gradient_against_finite_differences() -> None:
    t = np.array([0.1, 0.9, 3.0])
    _, g = exact(4, t)
    h = 1e-6
    up = np.log(kingman_tmrca(4, t, theta=1 + h, digits=60).pdf)
    down = np.log(kingman_tmrca(4, t, theta=1 - h, digits=60).pdf)
    np.testing.assert_allclose(g, (up - down) / (2 * h), rtol=1e-7)
