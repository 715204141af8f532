"""`phasic.loglik` as one FFI call (phasic_loglik / phasic_loglik_grad).

The kernel sums log f over the observations itself: the scales' logs add and the
series' values multiply into a mantissa with its binary exponent kept aside, so a call
takes one log instead of one per time, and only the sum and its gradient leave C++.
Each test holds it to the per-time route (jnp.sum of compute_log_pmf_ffi, itself
checked against exact densities elsewhere) and to independent references: relative
1e-12 of the sum's scale (sum |log f_i|: both sums round ~1e-16 per term), gradients
against jax.grad of the per-time sum and against central finite differences.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from core_graphs import cyclic_graph, random_graph

import phasic
from phasic import compute_log_pmf_ffi, models
from phasic.reference import kingman_tmrca

jax.config.update("jax_enable_x64", True)


def per_time_sum(text: str, theta, times, discrete: bool = False):
    return jnp.sum(compute_log_pmf_ffi(text, theta, times, discrete=discrete))


def assert_same_sum(got: float, want: float, scale: float) -> None:
    assert abs(float(got) - float(want)) <= 1e-12 * max(scale, 1.0), (got, want)


def kingman_times(n: int, count: int, seed: int) -> np.ndarray:
    k = np.arange(2, n + 1)
    rng = np.random.default_rng(seed)
    return rng.exponential(2.0 / (k * (k - 1)), size=(count, k.size)).sum(axis=1)


@pytest.mark.parametrize("count", [1, 7, 200, 5000])
def test_kingman_sum_and_gradient_match_the_per_time_route(count: int) -> None:
    text = models.kingman(7).to_json()
    times = jnp.asarray(kingman_times(7, count, seed=count))
    theta = jnp.array([1.3])
    val, grad = jax.value_and_grad(lambda th: phasic.loglik(text, th, times))(theta)
    want, want_grad = jax.value_and_grad(lambda th: per_time_sum(text, th, times))(theta)
    scale = float(jnp.sum(jnp.abs(compute_log_pmf_ffi(text, theta, times))))
    assert_same_sum(val, want, scale)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-11, atol=1e-11 * count)


def test_kingman_sum_matches_the_exact_density() -> None:
    """f_theta(t) = theta f_1(theta t) with f_1 Kingman's exact T_MRCA density."""
    n, theta = 9, 0.7
    times = kingman_times(n, 300, seed=2) / theta
    exact = kingman_tmrca(n, theta * times, digits=40)
    want = float(np.sum(np.log(theta * exact.pdf)))
    # d/dtheta log(theta f_1(theta t)) = 1 / theta + t f_1'(theta t) / f_1(theta t)
    want_grad = float(np.sum(1.0 / theta + times * exact.slope / exact.pdf))
    val, grad = jax.value_and_grad(lambda th: phasic.loglik(
        models.kingman(n), th, jnp.asarray(times)))(jnp.array([theta]))
    assert abs(float(val) - want) <= 1e-10 * np.sum(np.abs(np.log(theta * exact.pdf)))
    assert abs(float(grad[0]) - want_grad) <= 2e-10 * np.sum(
        np.abs(1.0 / theta) + np.abs(times * exact.slope / exact.pdf))


@pytest.mark.parametrize("seed", [3, 4])
def test_cyclic_two_parameter_graphs_against_finite_differences(seed: int) -> None:
    case = random_graph(seed, cyclic=True, n_states=15, n_params=2)
    text = case.graph.to_json()
    mean = float(case.graph.moments(1, theta=case.theta)[0])
    times = jnp.asarray(np.random.default_rng(seed).exponential(mean, 400))
    theta = jnp.asarray(case.theta)
    fn = jax.jit(lambda th: phasic.loglik(text, th, times))
    grad = np.asarray(jax.grad(fn)(theta))
    for p in range(theta.size):
        h = 1e-6 * float(theta[p])
        e = jnp.zeros_like(theta).at[p].set(h)
        fd = (float(fn(theta + e)) - float(fn(theta - e))) / (2 * h)
        # central difference: truncation ~h^2 f''' and rounding ~1e-16 |sum| / h
        assert abs(grad[p] - fd) <= 1e-6 * max(abs(fd), 1.0), (p, grad[p], fd)
    assert_same_sum(fn(theta), per_time_sum(text, theta, times),
                    float(jnp.sum(jnp.abs(compute_log_pmf_ffi(text, theta, times)))))


def test_any_shape_of_observations_and_vmap_over_theta() -> None:
    g, theta = cyclic_graph()
    text = g.to_json()
    times = jnp.asarray(np.random.default_rng(5).exponential(2.0, (6, 50)))
    thetas = jnp.asarray(theta) * jnp.array([[1.0], [0.5], [2.0]])
    batched = jax.jit(jax.vmap(jax.value_and_grad(lambda th: phasic.loglik(text, th, times))))
    vals, grads = batched(thetas)
    for b in range(thetas.shape[0]):
        v, gr = jax.value_and_grad(lambda th: per_time_sum(text, th, times.reshape(-1)))(
            thetas[b])
        assert_same_sum(vals[b], v, 300.0 * 10)
        np.testing.assert_allclose(grads[b], gr, rtol=1e-11, atol=1e-9)


def test_no_observations_sum_to_zero() -> None:
    text = models.kingman(4).to_json()
    val, grad = jax.value_and_grad(lambda th: phasic.loglik(text, th, jnp.zeros((0,))))(
        jnp.array([1.0]))
    assert float(val) == 0.0 and float(grad[0]) == 0.0


def test_far_tails_and_an_exactly_zero_density() -> None:
    """Densities from 1e-4 to below 1e-3000 in one sum (the scales' logs carry them),
    and a discrete time 0 without a defect: -inf, with a finite gradient."""
    g = phasic.Graph(1)
    vs = [g.find_or_create_vertex([k]) for k in range(1, 4)]
    g.starting_vertex().add_edge(vs[0], 1.0)
    vs[0].add_edge(vs[1], [1.0])
    vs[1].add_edge(vs[2], [1.0])
    text = g.to_json()  # Erlang(2, theta)
    t = np.array([1e-4, 0.5, 3.0, 800.0, 7000.0])
    want = float(np.sum(2 * np.log(1.0) + np.log(t) - t))
    val, grad = jax.value_and_grad(lambda th: phasic.loglik(text, th, t))(jnp.array([1.0]))
    assert abs(float(val) - want) <= 1e-12 * np.sum(np.abs(np.log(t) - t))
    np.testing.assert_allclose(grad[0], np.sum(2.0 - t), rtol=1e-10)

    d = phasic.Graph(1, discrete=True)
    a, b = d.find_or_create_vertex((1,)), d.find_or_create_vertex((2,))
    d.starting_vertex().add_edge(a, 1.0)
    a.add_edge(b, [1.0])
    js = d.to_json()
    k = jnp.array([0.0, 3.0, 5.0])
    val, grad = jax.value_and_grad(lambda th: phasic.loglik(js, th, k, discrete=True))(
        jnp.array([0.2]))
    assert float(val) == -np.inf
    # the zero-probability time adds nothing; the others: d/dp log((1-p)^(k-1) p)
    np.testing.assert_allclose(grad[0], sum(1 / 0.2 - (x - 1) / 0.8 for x in (3.0, 5.0)),
                               rtol=1e-12)


def test_bad_inputs_are_clear_errors_and_the_process_carries_on() -> None:
    text = models.kingman(4).to_json()
    with pytest.raises(ValueError, match=r"theta must have shape \(1,\)"):
        phasic.loglik(text, jnp.array([1.0, 2.0]), [1.0])
    with pytest.raises(TypeError, match="float64"):
        phasic.loglik(text, jnp.array([1.0], dtype=jnp.float32), [1.0])
    with pytest.raises(ValueError, match=r"observed_times\[0\]"):
        phasic.loglik(text, jnp.array([1.0]), [np.inf])
    with pytest.raises(Exception, match=r"times\[1\] is nan"):
        jax.jit(lambda t: phasic.loglik(text, jnp.array([1.0]), t))(
            jnp.array([1.0, np.nan])).block_until_ready()
    with pytest.raises(Exception, match="theta"):
        jax.jit(lambda th: phasic.loglik(text, th, jnp.array([1.0])))(
            jnp.array([-1.0])).block_until_ready()
    with pytest.raises(TypeError, match="observed_times received a tangent"):
        jax.grad(lambda t: phasic.loglik(text, jnp.array([1.0]), t))(jnp.array([1.0]))
    assert np.isfinite(float(phasic.loglik(text, jnp.array([1.0]), [1.0])))
