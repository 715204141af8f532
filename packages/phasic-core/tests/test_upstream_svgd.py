"""Upstream phasic's SVGD entry points: Graph.svgd's keyword mapping onto phasic.svgd,
the exponential schedules, clear_caches and compute_trace."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest

import phasic
from phasic import models

THETA = 2.0


@pytest.fixture(scope="module")
def kingman_data():
    g = models.kingman(4)
    return g, g.sample(400, theta=[THETA], seed=7)


def flat_gauss(theta):
    return -0.5 * jnp.sum(((theta - 1.0) / 10.0) ** 2)


def test_exp_step_size_formula():
    s = phasic.ExpStepSize(first_step=0.1, last_step=0.01, tau=500.0)
    assert s(0) == 0.1
    for i in (1, 500, 5000):
        d = math.exp(-i / 500.0)
        assert s(i) == pytest.approx(0.1 * d + 0.01 * (1 - d), rel=1e-15)
    assert s(500) == pytest.approx(0.0431, abs=1e-4)  # about 63% of the way down


def test_exp_regularization_formula_allows_zero():
    r = phasic.ExpRegularization(first_reg=5.0, last_reg=0.0, tau=50.0)
    assert r(0) == 5.0
    assert r(100) == pytest.approx(5.0 * math.exp(-2.0), rel=1e-15)


@pytest.mark.parametrize("make, error, message", [
    (lambda: phasic.ExpStepSize(0.0, 0.01, 10.0), ValueError, "first_step must be finite and > 0"),
    (lambda: phasic.ExpStepSize(0.1, 0.01, -1.0), ValueError, "tau must be finite and > 0"),
    (lambda: phasic.ExpStepSize("0.1", 0.01, 1.0), TypeError, "first_step must be a number"),
    (lambda: phasic.ExpRegularization(1.0, -1.0, 1.0), ValueError, "last_reg must be finite"),
    (lambda: phasic.ExpRegularization(1.0, 0.0, float("inf")), ValueError, "tau must be"),
])
def test_bad_schedule_arguments(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_graph_svgd_is_phasic_svgd_with_upstreams_names(kingman_data):
    g, data = kingman_data
    schedule = phasic.ExpStepSize(first_step=0.3, last_step=0.05, tau=50.0)
    up = g.svgd(observed_data=data, theta_dim=1, prior=flat_gauss, n_particles=8,
                n_iterations=150, learning_rate=schedule, bandwidth="median", seed=3,
                verbose=False, discrete=False, positive_params=True,
                regularization=0.0, nr_moments=2, return_history=True, precompile=True)
    ours = phasic.svgd(g, data, log_prior=flat_gauss, n_particles=8, n_steps=150,
                       step_size=schedule, seed=3, log_transform=True, progress=False)
    np.testing.assert_array_equal(up.particles, ours.particles)
    np.testing.assert_array_equal(up.theta_mean, ours.particles.mean(axis=0))
    np.testing.assert_array_equal(up.theta_std, ours.particles.std(axis=0))
    assert up.get_results()["theta_mean"] is up.theta_mean
    assert up.history.step_size[0] == schedule(0)
    # the posterior concentrates near the truth: 400 exact draws at theta = 2 give a
    # posterior sd of about 0.06, so 0.3 is 5 sd
    assert abs(float(up.theta_mean[0]) - THETA) < 0.3


def test_graph_svgd_defaults(kingman_data):
    g, data = kingman_data
    up = g.svgd(data, n_iterations=5, seed=None)
    assert up.particles.shape == (20, 1)  # upstream's default: 20 particles per parameter
    again = g.svgd(data, n_iterations=5)
    np.testing.assert_array_equal(up.particles, again.particles)  # seed None = seed 0


@pytest.mark.parametrize("kwargs, error, message", [
    ({"regularization": 1.0}, NotImplementedError, "moment regularization"),
    ({"optimizer": object()}, NotImplementedError, "optimizer objects"),
    ({"bandwidth": "median_per_dim"}, NotImplementedError, "only the median heuristic"),
    ({"prior": [None]}, NotImplementedError, "per-parameter Prior objects"),
    ({"fixed": [(0, 1.0)]}, NotImplementedError, "fixing parameters"),
    ({"rewards": np.ones(5)}, NotImplementedError, "reward-transformed"),
    ({"preconditioner": "diag"}, NotImplementedError, "preconditioners"),
    ({"jit": False}, NotImplementedError, "always compiled"),
    ({"no_such_option": 1}, TypeError, "unexpected keyword argument 'no_such_option'"),
    ({"discrete": True}, TypeError, "this graph is continuous"),
    ({"theta_dim": 3}, ValueError, "theta_dim=3 but the graph has 1"),
    ({"parallel": "threads"}, ValueError, "parallel must be"),
    ({"n_devices": 0}, ValueError, "n_devices must be an int"),
])
def test_unsupported_or_bad_keywords_are_explained(kingman_data, kwargs, error, message):
    g, data = kingman_data
    with pytest.raises(error, match=message):
        g.svgd(data, n_iterations=2, **kwargs)


def test_bad_observed_data(kingman_data):
    g, _ = kingman_data
    with pytest.raises(ValueError, match="1-d array of finite observations"):
        g.svgd(np.array([1.0, np.nan]), n_iterations=2)


def test_clear_caches_empties_the_structure_cache(kingman_data):
    g, _ = kingman_data
    phasic.compute_moments_ffi(g.serialize(), jnp.array([1.0]), 2)
    assert phasic.clear_caches() is None
    assert phasic.cache_stats()["entries"] == 0


def test_compute_trace_validates_and_returns_none():
    g = models.kingman(3)
    assert g.compute_trace() is None
    assert phasic.Graph.compute_trace(g, "ignored", hierarchical=True) is None
