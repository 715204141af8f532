"""The state at a time: state_probabilities and accumulated_visiting_time.

References, independent of the kernel's uniformization and stepping:
- scipy.linalg.expm of the full generator over every vertex (absorbing ones included,
  with zero rows) for P(X_t = v), and of the augmented matrix [[Q, I], [0, 0]] t, whose
  top-right block is the integral of exp(Q s) over [0, t], for the accumulated time;
- matrix powers of the full transition matrix for discrete graphs;
- the pdf/cdf kernels (absorbed mass = cdf) and quadrature of 1 - cdf (E[min(T, t)]);
- central finite differences of the dense reference for the derivatives.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.linalg
from core_graphs import random_graph, with_defect
from core_reference import finite_difference

import phasic
from phasic import Graph


def full_chain(g: Graph, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x0, Q or P over all vertices, absorbing flags) from the graph's JSON."""
    doc = json.loads(g.to_json())
    nv = len(doc["states"])
    w = np.array(doc["edges"]["weight"], dtype=np.float64)
    co = doc.get("coefficients") or {"edge": [], "param": [], "value": []}
    for e, p, v in zip(co["edge"], co["param"], co["value"], strict=True):
        w[e] += v * theta[p]
    src, dst = doc["edges"]["from"], doc["edges"]["to"]
    x0, m = np.zeros(nv), np.zeros((nv, nv))
    for a, b, x in zip(src, dst, w, strict=True):
        if a == 0:
            x0[b] += x
        else:
            m[a, b] += x
    x0 /= x0.sum()
    absorbing = np.array([v > 0 and v not in src for v in range(nv)])
    if doc["discrete"]:
        for v in range(1, nv):
            m[v, v] += 1.0 - m[v].sum()
    else:
        m[np.diag_indices(nv)] -= m.sum(axis=1)
    return x0, m, absorbing


def reference(g: Graph, theta: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense state probabilities and accumulated times, each (T, V)."""
    x0, m, absorbing = full_chain(g, theta)
    nv = len(x0)
    probs, accs = [], []
    for t in times:
        if g.discrete:
            k = int(t)
            probs.append(x0 @ np.linalg.matrix_power(m, k))
            acc = sum((x0 @ np.linalg.matrix_power(m, i) for i in range(k)), np.zeros(nv))
        else:
            probs.append(x0 @ scipy.linalg.expm(m * t))
            aug = np.zeros((2 * nv, 2 * nv))
            aug[:nv, :nv], aug[:nv, nv:] = m, np.eye(nv)
            acc = x0 @ scipy.linalg.expm(aug * t)[:nv, nv:]
        acc[absorbing] = 0.0
        acc[0] = 0.0
        accs.append(acc)
    return np.array(probs), np.array(accs)


CASES = [(seed, cyclic, defect) for seed in (1, 2, 3) for cyclic in (False, True)
         for defect in (False, True)]


def case(seed: int, cyclic: bool, defect: bool, discrete: bool) -> tuple[Graph, np.ndarray]:
    if defect:
        return with_defect(seed, cyclic=cyclic, discrete=discrete)
    c = random_graph(seed, cyclic=cyclic, discrete=discrete)
    return c.graph, c.theta


def check_case(g: Graph, theta: np.ndarray, times: np.ndarray, rtol: float, cdf_rtol: float,
               ) -> np.ndarray:
    """Both outputs against the dense reference, rows summing to 1, vertex 0 empty and the
    absorbed mass equal to the cdf kernel's (its own tolerance, cdf_rtol); returns acc."""
    prob = np.asarray(phasic.compute_state_probabilities_ffi(g, theta, times))
    acc = np.asarray(phasic.compute_accumulated_visiting_time_ffi(g, theta, times))
    ref_p, ref_a = reference(g, theta, times)
    np.testing.assert_allclose(prob, ref_p, rtol=rtol, atol=1e-14)
    np.testing.assert_allclose(acc, ref_a, rtol=rtol, atol=1e-14)
    np.testing.assert_allclose(prob.sum(axis=1), 1.0, atol=1e-13)
    assert np.all(prob[:, 0] == 0.0)
    _, _, absorbing = full_chain(g, theta)
    np.testing.assert_allclose(prob[:, absorbing].sum(axis=1), g.cdf(times, theta=theta),
                               rtol=cdf_rtol, atol=1e-14)
    return acc


@pytest.mark.parametrize("seed,cyclic,defect", CASES)
def test_continuous_against_expm(seed: int, cyclic: bool, defect: bool) -> None:
    g, theta = case(seed, cyclic, defect, discrete=False)
    times = np.array([0.0, 0.05, 0.7, 2.5])
    acc = check_case(g, theta, times, rtol=1e-11, cdf_rtol=1e-9)
    # Sum over vertices of the accumulated time = E[min(T, t)] = int_0^t (1 - cdf).
    for t, row in zip(times, acc, strict=True):
        quad = scipy.integrate.quad(lambda s: 1.0 - float(g.cdf(s, theta=theta)), 0.0, t,
                                    epsabs=1e-13, epsrel=1e-11)[0]
        assert row.sum() == pytest.approx(quad, rel=1e-9, abs=1e-13)


@pytest.mark.parametrize("seed,cyclic,defect", CASES)
def test_discrete_against_matrix_powers(seed: int, cyclic: bool, defect: bool) -> None:
    g, theta = case(seed, cyclic, defect, discrete=True)
    check_case(g, theta, np.array([0.0, 1.0, 4.0, 9.0]), rtol=1e-11, cdf_rtol=1e-11)


def test_many_uniformization_steps_against_expm() -> None:
    # lambda t up to ~8e4: the Poisson weights start below 1e-300 and the cut comes
    # tens of thousands of steps in.
    g, theta = with_defect(4, cyclic=True, discrete=False)
    times = np.array([0.0, 40.0, 400.0]) / max(1.0, float(np.max(theta)))
    check_case(g, theta * 50.0, times, rtol=1e-10, cdf_rtol=1e-9)


@pytest.mark.parametrize("discrete", [False, True])
@pytest.mark.parametrize("cyclic", [False, True])
def test_gradients_against_finite_differences(discrete: bool, cyclic: bool) -> None:
    g, theta = with_defect(5, cyclic=cyclic, discrete=discrete)
    times = np.array([0.0, 1.0, 3.0]) if discrete else np.array([0.0, 0.3, 1.7])
    for fn, which in ((phasic.compute_state_probabilities_ffi, 0),
                      (phasic.compute_accumulated_visiting_time_ffi, 1)):
        jac = np.asarray(jax.jacfwd(lambda th, f=fn: f(g, th, times))(jnp.asarray(theta)))
        fd = finite_difference(lambda th, w=which: reference(g, th, times)[w], theta)
        np.testing.assert_allclose(jac, fd, rtol=1e-6, atol=1e-9)
        rev = np.asarray(jax.jacrev(lambda th, f=fn: f(g, th, times))(jnp.asarray(theta)))
        np.testing.assert_allclose(rev, jac, rtol=1e-12, atol=1e-15)


def test_jit_and_vmap_match_single_calls() -> None:
    c = random_graph(7, cyclic=True)
    thetas = np.stack([c.theta, c.theta * 1.3])
    times = np.array([0.2, 1.0])
    f = jax.jit(jax.vmap(lambda th: phasic.compute_state_probabilities_ffi(c.graph, th, times)))
    out = np.asarray(f(jnp.asarray(thetas)))
    for th, row in zip(thetas, out, strict=True):
        np.testing.assert_allclose(row, reference(c.graph, th, times)[0], rtol=1e-9, atol=1e-13)


def test_graph_methods_and_upstream_names() -> None:
    g = Graph(1)
    a, b = g.find_or_create_vertex([1]), g.find_or_create_vertex([2])
    c = g.find_or_create_vertex([3])
    g.starting_vertex().add_edge(a, 1.0)
    a.add_edge(b, 2.0)
    b.add_edge(c, 3.0)
    # Closed forms: P(a) = e^{-2t}, P(b) = 2 (e^{-2t} - e^{-3t}), int P(a) = (1 - e^{-2t}) / 2.
    t = 0.5
    p = g.state_probabilities(t)
    assert p.shape == (4,)
    pa, pb = np.exp(-2 * t), 2 * (np.exp(-2 * t) - np.exp(-3 * t))
    np.testing.assert_allclose(p, [0.0, pa, pb, 1 - pa - pb], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(g.stop_probability(t), p, rtol=0, atol=0)
    acc = g.accumulated_visiting_time([t, 1.0])
    assert acc.shape == (2, 4)
    # int_0^t 2 (e^{-2s} - e^{-3s}) ds = (1 - e^{-2t}) - 2 (1 - e^{-3t}) / 3.
    ib = (1 - np.exp(-2 * t)) - 2 * (1 - np.exp(-3 * t)) / 3
    np.testing.assert_allclose(acc[0], [0.0, (1 - np.exp(-2 * t)) / 2, ib, 0.0], rtol=1e-13)


def test_bad_times_and_theta_raise() -> None:
    c = random_graph(3, cyclic=False)
    # Detected in C++: a ValueError, or JAX's runtime error carrying the same message.
    kernel = (ValueError, RuntimeError)
    with pytest.raises(kernel, match=r"times\[0\] is -1.*>= 0"):
        phasic.compute_state_probabilities_ffi(c.graph, c.theta, [-1.0])
    with pytest.raises(kernel, match=r"times\[0\] is nan"):
        phasic.compute_accumulated_visiting_time_ffi(c.graph, c.theta, [np.nan])
    with pytest.raises(ValueError, match="theta.*length"):
        phasic.compute_state_probabilities_ffi(c.graph, np.append(c.theta, 1.0), [1.0])
    with pytest.raises(ValueError, match="1-D"):
        phasic.compute_state_probabilities_ffi(c.graph, c.theta, np.ones((2, 2)))
