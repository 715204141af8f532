"""The starting vertex and its out-edges: relative start weights, per theta.

The initial distribution is alpha_i(theta) = w_i(theta) / sum_j w_j(theta) over the
starting vertex's out-edges, with w = constant + c . theta; a start edge into an
absorbing vertex is mass at T = 0 (the defect). The references are closed forms of
exponential mixtures, the dense-matrix formulas of core_reference.py and central
finite differences of them; none calls the C++ kernels.
"""

from __future__ import annotations

import json
import math

import core_reference as reference
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_gradients import assert_jac_close, central_fd

import phasic
from phasic import (
    Graph,
    compute_log_pmf_ffi,
    compute_moments_ffi,
    compute_pmf_and_moments_ffi,
    compute_pmf_ffi,
)

TIMES = np.array([0.0, 0.1, 0.7, 2.5])


def mixture_graph() -> Graph:
    """Start -> A with weight theta0, start -> B with 0.5 + 2 theta1 (different
    coefficient vectors); A -> Z at rate 2, B -> Z at rate 3 + theta0. Z is the
    all-zero state, an ordinary (absorbing) vertex."""
    g = Graph(1)
    a, b, z = (g.find_or_create_vertex([x]) for x in (1, 2, 0))
    g.starting_vertex().add_edge(a, [1.0, 0.0])
    g.starting_vertex().add_edge_parameterized(b, 0.5, [0.0, 2.0])
    a.add_edge(z, 2.0)
    b.add_edge_parameterized(z, 3.0, [1.0, 0.0])
    return g


def mixture_exact(theta: np.ndarray) -> dict[str, np.ndarray]:
    """Closed forms: T is Exp(2) with probability p, else Exp(3 + theta0)."""
    p = theta[0] / (theta[0] + 0.5 + 2.0 * theta[1])
    r = 3.0 + theta[0]
    t = TIMES
    return {
        "pdf": p * 2.0 * np.exp(-2.0 * t) + (1 - p) * r * np.exp(-r * t),
        "cdf": 1.0 - p * np.exp(-2.0 * t) - (1 - p) * np.exp(-r * t),
        "moments": np.array([p / 2 + (1 - p) / r, 2 * p / 4 + 2 * (1 - p) / r**2,
                             6 * p / 8 + 6 * (1 - p) / r**3]),
    }


@pytest.mark.parametrize("theta", [np.array([0.7, 1.3]), np.array([2.0, 0.0])])
def test_theta_dependent_start_edges_match_the_closed_form(theta: np.ndarray) -> None:
    g, want = mixture_graph(), mixture_exact(theta)
    assert g.find_vertex([0]) == g.vertex_at(3)
    np.testing.assert_allclose(g.pdf(TIMES, theta=theta), want["pdf"], rtol=1e-12)
    # the CDF's uniformization sums are truncated at 1e-10 relative
    np.testing.assert_allclose(g.cdf(TIMES, theta=theta), want["cdf"], rtol=1e-10)
    np.testing.assert_allclose(g.moments(3, theta=theta), want["moments"], rtol=1e-12)
    js = g.to_json()
    th = jnp.asarray(theta)
    np.testing.assert_allclose(compute_pmf_ffi(js, th, TIMES), want["pdf"], rtol=1e-12)
    np.testing.assert_allclose(compute_moments_ffi(js, th, 3), want["moments"], rtol=1e-12)
    # log f to 1e-10 relative in f, so to 1e-10 absolute in log f
    np.testing.assert_allclose(compute_log_pmf_ffi(js, th, TIMES), np.log(want["pdf"]),
                               rtol=0, atol=1e-10)
    pmf, mom = compute_pmf_and_moments_ffi(js, th, TIMES, 2)
    np.testing.assert_allclose(pmf, want["pdf"], rtol=1e-12)
    np.testing.assert_allclose(mom, want["moments"][:2], rtol=1e-12)
    rep = g.as_matrices(theta=theta)
    p = theta[0] / (theta[0] + 0.5 + 2.0 * theta[1])
    np.testing.assert_allclose(rep.ipv, [p, 1 - p], rtol=1e-14)


def test_derivatives_through_the_normalization() -> None:
    """jax derivatives of every FFI target against finite differences of the closed form."""
    g, theta = mixture_graph(), np.array([0.7, 1.3])
    js, th = g.to_json(), jnp.asarray(theta)
    assert_jac_close(jax.jacrev(lambda t: compute_pmf_ffi(js, t, TIMES))(th),
                     central_fd(lambda t: mixture_exact(t)["pdf"], theta))
    assert_jac_close(jax.jacfwd(lambda t: compute_moments_ffi(js, t, 3))(th),
                     central_fd(lambda t: mixture_exact(t)["moments"], theta))
    assert_jac_close(jax.jacrev(lambda t: compute_log_pmf_ffi(js, t, TIMES))(th),
                     central_fd(lambda t: np.log(mixture_exact(t)["pdf"]), theta))
    grad = jax.grad(lambda t: phasic.loglik(js, t, TIMES[1:]))(th)
    assert_jac_close(grad, central_fd(lambda t: np.log(mixture_exact(t)["pdf"][1:]).sum(),
                                      theta))


def cyclic_graph(scale: float, defect: float = 0.0) -> Graph:
    """A cyclic graph (the general elimination path, not the acyclic fused one) with
    start weights 0.2 and 0.4 + theta1 times `scale`, plus an optional defect edge."""
    g = Graph(1)
    a, b, c, z = (g.find_or_create_vertex([x]) for x in (1, 2, 3, 4))
    start = g.starting_vertex()
    start.add_edge(a, 0.2 * scale)
    start.add_edge_parameterized(b, 0.4 * scale, [0.0, scale])
    if defect:
        start.add_edge(z, defect * scale)
    a.add_edge(b, [1.0, 0.5])
    b.add_edge(a, 0.3)
    b.add_edge(c, [0.0, 2.0])
    c.add_edge(a, 0.1)
    c.add_edge(z, 1.5)
    a.add_edge_parameterized(z, 0.2, [0.4, 0.0])
    return g


@pytest.mark.parametrize("scale", [1.0, 1.0 / 1.6, 4.0 / 1.6])
def test_start_weights_summing_below_and_above_one(scale: float) -> None:
    """At theta1 = 1 the start weights sum to 1.6 * scale: 1.6, 1 and 4. Only their
    ratios count, and every path agrees with the dense normalized reference."""
    theta = np.array([0.8, 1.0])
    g, js = cyclic_graph(scale), cyclic_graph(scale).to_json()
    d = reference.dense(js, theta)
    np.testing.assert_allclose(d.alpha, [0.2 / 1.6, 1.4 / 1.6, 0.0], rtol=1e-15)
    want_pdf, want_mom = reference.pdf(js, theta, TIMES), reference.moments(js, theta, 3)
    np.testing.assert_allclose(g.pdf(TIMES, theta=theta), want_pdf, rtol=1e-11)
    np.testing.assert_allclose(g.cdf(TIMES, theta=theta), reference.cdf(js, theta, TIMES),
                               rtol=1e-10)
    np.testing.assert_allclose(g.moments(3, theta=theta), want_mom, rtol=1e-11)
    np.testing.assert_allclose(compute_pmf_ffi(js, jnp.asarray(theta), TIMES), want_pdf,
                               rtol=1e-11)
    np.testing.assert_allclose(compute_moments_ffi(js, jnp.asarray(theta), 3), want_mom,
                               rtol=1e-11)
    np.testing.assert_allclose(g.as_matrices(theta=theta).ipv, d.alpha, rtol=1e-15)
    jac = jax.jacrev(lambda t: compute_pmf_ffi(js, t, TIMES))(jnp.asarray(theta))
    assert_jac_close(jac, central_fd(lambda t: reference.pdf(js, t, TIMES), theta))
    jac = jax.jacfwd(lambda t: compute_moments_ffi(js, t, 2))(jnp.asarray(theta))
    assert_jac_close(jac, central_fd(lambda t: reference.moments(js, t, 2), theta))


def test_defect_edge_is_mass_at_zero() -> None:
    """A start edge into an absorbing vertex: its share of the start weights is
    P(T = 0); the density and the moments carry the rest."""
    theta = np.array([0.8, 1.0])
    g, plain = cyclic_graph(1.0, defect=0.4), cyclic_graph(1.0)
    share = 0.4 / 2.0
    np.testing.assert_allclose(g.cdf(0.0, theta=theta), share, rtol=1e-15)
    np.testing.assert_allclose(g.pdf(TIMES, theta=theta),
                               (1 - share) * plain.pdf(TIMES, theta=theta), rtol=1e-12)
    np.testing.assert_allclose(g.cdf(TIMES, theta=theta),
                               share + (1 - share) * plain.cdf(TIMES, theta=theta), rtol=1e-10)
    np.testing.assert_allclose(g.moments(2, theta=theta),
                               (1 - share) * plain.moments(2, theta=theta), rtol=1e-12)
    np.testing.assert_allclose(g.as_matrices(theta=theta).ipv.sum(), 1 - share, rtol=1e-15)
    js = g.to_json()
    np.testing.assert_allclose(reference.dense(js, theta).defect, share, rtol=1e-14)
    jac = jax.jacrev(lambda t: compute_pmf_ffi(js, t, TIMES))(jnp.asarray(theta))
    assert_jac_close(jac, central_fd(lambda t: reference.pdf(js, t, TIMES), theta))


def discrete_graph() -> Graph:
    """A discrete chain whose defect edge depends on theta: P(T = 0) = theta0 / (theta0
    + 1 + theta1)."""
    g = Graph(1, discrete=True)
    a, b, z = (g.find_or_create_vertex([x]) for x in (1, 2, 0))
    start = g.starting_vertex()
    start.add_edge(z, [1.0, 0.0])
    start.add_edge_parameterized(a, 1.0, [0.0, 1.0])
    a.add_edge(b, [0.3, 0.0])
    a.add_edge(z, 0.2)
    b.add_edge_parameterized(a, 0.1, [0.0, 0.2])
    b.add_edge(z, 0.5)
    return g


def test_discrete_defect_depends_on_theta() -> None:
    g, theta = discrete_graph(), np.array([0.6, 1.2])
    js, th = g.to_json(), jnp.asarray(theta)
    steps = np.array([0.0, 1.0, 2.0, 5.0, 9.0])
    defect = theta[0] / (theta[0] + 1.0 + theta[1])
    want = reference.pmf(js, theta, steps)
    assert want[0] == pytest.approx(defect, rel=1e-15)
    np.testing.assert_allclose(g.pmf(steps, theta=theta), want, rtol=1e-12)
    np.testing.assert_allclose(compute_pmf_ffi(js, th, steps, discrete=True), want, rtol=1e-12)
    np.testing.assert_allclose(g.moments(2, theta=theta), reference.moments(js, theta, 2),
                               rtol=1e-12)
    jac = jax.jacrev(lambda t: compute_pmf_ffi(js, t, steps, discrete=True))(th)
    assert_jac_close(jac, central_fd(lambda t: reference.pmf(js, t, steps), theta))
    # d defect / d theta by the quotient rule
    total = theta[0] + 1.0 + theta[1]
    np.testing.assert_allclose(jac[0], [(1.0 + theta[1]) / total**2, -theta[0] / total**2],
                               rtol=1e-13)
    jac = jax.jacfwd(lambda t: compute_moments_ffi(js, t, 2))(th)
    assert_jac_close(jac, central_fd(lambda t: reference.moments(js, t, 2), theta))


# -- bad start weights ------------------------------------------------------------------


def test_start_weights_summing_to_zero_name_theta() -> None:
    g = mixture_graph()
    theta = np.array([0.0, -0.25])  # start weights 0 and 0.5 - 0.5
    js = g.to_json()
    for call in (lambda: g.pdf(TIMES, theta=theta), lambda: g.moments(1, theta=theta),
                 lambda: g.cdf(TIMES, theta=theta),
                 lambda: compute_pmf_ffi(js, jnp.asarray(theta), TIMES),
                 lambda: compute_moments_ffi(js, jnp.asarray(theta), 2),
                 lambda: jax.grad(lambda t: compute_moments_ffi(js, t, 1)[0])(
                     jnp.asarray(theta))):
        with pytest.raises((ValueError, RuntimeError), match=r"sum to 0 at theta = \[0, -0\.25\].*> 0"):
            call()
    with pytest.raises(ValueError, match=r"sum to 0.0 at theta = \[0.0, -0.25\].*> 0"):
        g.as_matrices(theta=theta)
    # the process survives, and a good theta works on the same graph
    assert g.pdf(0.5, theta=np.array([1.0, 1.0])) > 0


def test_no_start_edge_is_a_clear_error() -> None:
    g = Graph(1)
    a, z = g.find_or_create_vertex([1]), g.find_or_create_vertex([2])
    a.add_edge(z, 1.0)
    for call in (lambda: g.pdf(1.0), lambda: g.moments(1), lambda: g.as_matrices(),
                 lambda: compute_pmf_ffi(g.to_json(), jnp.zeros(0), TIMES)):
        with pytest.raises((ValueError, RuntimeError), match=r"no out-edges.*add an edge from the starting"):
            call()


# -- the starting vertex is not found by state -------------------------------------------


def test_all_zero_state_is_an_ordinary_vertex() -> None:
    g = Graph(2)
    assert g.find_vertex([0, 0]) is None and not g.vertex_exists([0, 0])
    zero = g.find_or_create_vertex([0, 0])
    assert zero == g.vertex_at(1) and g.vertices_length() == 2
    assert g.find_or_create_vertex([0, 0]) == zero and g.vertex_exists([0, 0])
    with pytest.raises(ValueError, match=r"already belongs to vertex 1.*find_or_create_vertex"):
        g.create_vertex([0, 0])
    with pytest.raises(ValueError, match="into vertex 0"):
        zero.add_edge(g.starting_vertex(), 1.0)
    one = g.find_or_create_vertex([1, 0])
    g.starting_vertex().add_edge(one, 1.0)
    one.add_edge(zero, 2.5)
    assert g.expectation(theta=None) == pytest.approx(0.4, rel=1e-15)
    copy = Graph.from_json(g.to_json())
    assert copy.find_vertex([0, 0]) == copy.vertex_at(1)
    assert copy.pdf(1.0) == pytest.approx(2.5 * math.exp(-2.5), rel=1e-14)


def test_json_states_after_vertex_0_may_be_zero_but_distinct() -> None:
    doc = json.loads(mixture_graph().to_json())
    assert doc["states"][0] == [0] and doc["states"][3] == [0]
    bad = dict(doc, states=[[0], [1], [1], [0]])
    with pytest.raises(ValueError, match=r"states\[2\]: duplicates states\[1\]"):
        Graph.from_json(bad)
    with pytest.raises(ValueError, match=r"states\[0\]: the starting vertex's state must be"):
        Graph.from_json(dict(doc, states=[[5], [1], [2], [0]]))
    into_start = dict(doc, edges=dict(doc["edges"], to=[1, 2, 3, 0]))
    with pytest.raises(ValueError, match=r"edges.to\[3\]: edges into vertex 0"):
        Graph.from_json(into_start)


# -- add_edge_parameterized and from_matrices ---------------------------------------------


def test_add_edge_parameterized_stores_base_and_coefficients() -> None:
    doc = json.loads(mixture_graph().to_json())
    # edge 1: start -> B, 0.5 + 2 theta1; edge 3: B -> Z, 3 + theta0
    assert doc["edges"]["weight"] == [0.0, 0.5, 2.0, 3.0]
    assert doc["coefficients"] == {"edge": [0, 1, 3], "param": [0, 1, 0],
                                   "value": [1.0, 2.0, 1.0]}


@pytest.mark.parametrize(("weight", "edge_state", "error", "match"), [
    ([1.0], [1.0], TypeError, "constant part of the edge weight"),
    (True, [1.0], TypeError, "constant part of the edge weight"),
    (1.0, 2.0, TypeError, r"sequence of floats.*use \[2.0\]"),
    (1.0, "ab", TypeError, "a float .*or a sequence"),
    (math.inf, [1.0], ValueError, "finite"),
    (1.0, [1.0, math.nan], ValueError, "finite"),
    (1.0, [[1.0]], ValueError, "flat sequence"),
])
def test_add_edge_parameterized_bad_input(weight, edge_state, error, match) -> None:
    g = Graph(1)
    a = g.find_or_create_vertex([1])
    with pytest.raises(error, match=match):
        g.starting_vertex().add_edge_parameterized(a, weight, edge_state)
    assert g.edges_length() == 0


def test_from_matrices_keeps_the_defect_as_a_start_edge() -> None:
    sim = np.array([[-3.0, 1.0], [0.5, -2.0]])
    g = Graph.from_matrices([0.3, 0.4], sim)
    assert g.cdf(0.0) == pytest.approx(0.3, rel=1e-14)
    rep = g.as_matrices()
    np.testing.assert_allclose(rep.ipv, [0.3, 0.4], rtol=1e-14)
    np.testing.assert_allclose(rep.sim, sim, rtol=1e-15)
    # E[T] = alpha (-S)^-1 1 with alpha summing to 0.7
    want = np.array([0.3, 0.4]) @ np.linalg.solve(-sim, np.ones(2))
    assert g.expectation() == pytest.approx(want, rel=1e-14)
    full = Graph.from_matrices([0.25, 0.75], sim)
    assert full.cdf(0.0) == 0.0 and full.edges_length() == g.edges_length() - 1
    with pytest.raises(ValueError, match="summing to at most 1"):
        Graph.from_matrices([0.7, 0.4], sim)
