"""Upstream phasic's Graph names on our Graph, checked against dense matrix formulas.

The graphs are small and written down by hand together with their sub-intensity
matrix S (or sub-transition matrix P) and initial vector alpha, so every reference
value comes from numpy/scipy on those hand-written matrices, never from phasic. PDF and CDF values are compared at 1e-10, the relative error the
kernels guarantee (docs/pages/accuracy.md); everything else at 1e-12 or tighter.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg

import phasic
from phasic import Graph, MatrixRepresentation, models

PDF_RTOL = 1e-10
THETA = np.array([1.5, 0.25])
# The graph of `cyclic_graph()` at THETA, over its transient vertices a, b, c
# (vertex indices 1, 2, 3; the absorbing vertex d is index 4).
ALPHA = np.array([0.7, 0.3, 0.0])
S = np.array([
    [-4.0, 3.0, 0.0],   # a: to b at 2*theta0 = 3, to d at 1
    [0.5, -3.5, 3.0],   # b: to a at 0.5, to c at 3
    [0.0, 0.0, -1.0],   # c: to d at 4*theta1 = 1
])


def cyclic_graph() -> Graph:
    """A continuous graph with a cycle a <-> b and both constant and theta weights."""
    g = Graph(2)
    a = g.find_or_create_vertex([1, 0])
    b = g.find_or_create_vertex([2, 0])
    c = g.find_or_create_vertex([1, 1])
    d = g.find_or_create_vertex([0, 1])
    g.starting_vertex().add_edge(a, 0.7)
    g.starting_vertex().add_edge(b, 0.3)
    a.add_edge(b, [2.0, 0.0])
    a.add_edge(d, 1.0)
    b.add_edge(a, 0.5)
    b.add_edge(c, 3.0)
    c.add_edge(d, [0.0, 4.0])
    return g


def dense_pdf(alpha: np.ndarray, s: np.ndarray, t: float) -> float:
    return float(alpha @ scipy.linalg.expm(s * t) @ (-s.sum(axis=1)))


def dense_cdf(alpha: np.ndarray, s: np.ndarray, t: float) -> float:
    return 1.0 - float(alpha @ scipy.linalg.expm(s * t) @ np.ones(len(alpha)))


# -- as_matrices -----------------------------------------------------------------------


def test_as_matrices_is_the_hand_written_matrix() -> None:
    rep = cyclic_graph().as_matrices(THETA)
    assert isinstance(rep, MatrixRepresentation) and isinstance(rep, tuple)
    assert MatrixRepresentation._fields == ("ipv", "sim", "states", "indices")
    np.testing.assert_array_equal(rep.ipv, ALPHA)
    np.testing.assert_array_equal(rep.sim, S)
    np.testing.assert_array_equal(rep.states, [[1, 0], [2, 0], [1, 1]])
    assert rep.states.dtype == np.int32 and rep.indices.dtype == np.int32
    # 1-based, counting the starting vertex: vertex index + 1; absorbing d is left out
    np.testing.assert_array_equal(rep.indices, [2, 3, 4])
    ipv, sim, states, indices = rep  # also unpacks like a tuple
    assert np.array_equal(sim, S) and np.array_equal(ipv, ALPHA)


def test_as_matrices_agrees_with_pdf_cdf_and_moments() -> None:
    g = cyclic_graph()
    rep = g.as_matrices(THETA)
    for t in (0.1, 0.7, 2.0, 6.0):
        assert g.pdf(t, THETA) == pytest.approx(dense_pdf(rep.ipv, rep.sim, t), rel=PDF_RTOL)
        assert g.cdf(t, THETA) == pytest.approx(dense_cdf(rep.ipv, rep.sim, t), rel=PDF_RTOL)
    u = np.linalg.inv(-S)
    expected = [math.factorial(k) * ALPHA @ np.linalg.matrix_power(u, k) @ np.ones(3)
                for k in (1, 2, 3)]
    np.testing.assert_allclose(g.moments(3, THETA), expected, rtol=1e-12)


def test_as_matrices_leaves_start_edges_into_absorption_as_a_defect() -> None:
    g = Graph(1)
    a = g.find_or_create_vertex([1])
    done = g.find_or_create_vertex([2])
    g.starting_vertex().add_edge(a, 0.6)
    g.starting_vertex().add_edge(done, 0.4)
    a.add_edge(done, 2.0)
    rep = g.as_matrices()
    np.testing.assert_array_equal(rep.ipv, [0.6])
    np.testing.assert_array_equal(rep.sim, [[-2.0]])
    np.testing.assert_array_equal(rep.indices, [2])


def test_as_matrices_of_a_discrete_graph_is_p_minus_identity() -> None:
    g = Graph(1, discrete=True)
    a = g.find_or_create_vertex([1])
    b = g.find_or_create_vertex([2])
    done = g.find_or_create_vertex([3])
    g.starting_vertex().add_edge(a, 1.0)
    a.add_edge(b, 0.25)  # a stays with probability 1 - 0.25 - 0.5
    a.add_edge(done, 0.5)
    b.add_edge(done, [1.0])
    p = np.array([[0.25, 0.25], [0.0, 0.6]])  # theta0 = 0.4: b leaves with 0.4
    rep = g.as_matrices([0.4])
    np.testing.assert_allclose(rep.sim, p - np.eye(2), rtol=0, atol=1e-15)


def test_as_matrices_rejects_bad_theta_and_negative_weights() -> None:
    g = cyclic_graph()
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        g.as_matrices([1.0])
    with pytest.raises(ValueError, match="pass theta"):
        g.as_matrices()
    g2 = Graph(1)
    a = g2.find_or_create_vertex([1])
    b = g2.find_or_create_vertex([2])
    g2.starting_vertex().add_edge(a, 1.0)
    a.add_edge(b, [-1.0])
    with pytest.raises(ValueError, match=r"edge 1 -> 2 has weight -2.0"):
        g2.as_matrices([2.0])


# -- from_matrices ---------------------------------------------------------------------


def test_from_matrices_default_states_and_round_trip() -> None:
    g = Graph.from_matrices(ALPHA, S)
    assert not g.discrete and g.state_length == 1
    # (i + 1,) for row i (the all-zero state is the starting vertex), then the sink
    np.testing.assert_array_equal(g.states(), [[0], [1], [2], [3], [4]])
    assert g.vertex_at(4).edges() == []
    rep = g.as_matrices()
    np.testing.assert_array_equal(rep.ipv, ALPHA)
    np.testing.assert_allclose(rep.sim, S, rtol=0, atol=1e-15)
    for t in (0.3, 1.0, 4.0):
        assert g.pdf(t) == pytest.approx(dense_pdf(ALPHA, S, t), rel=PDF_RTOL)


def test_from_matrices_with_states_and_a_defect() -> None:
    alpha = np.array([0.5, 0.3])  # 0.2 of the mass is absorbed at T = 0
    s = np.array([[-2.0, 1.5], [0.0, -0.5]])
    states = np.array([[1, 4], [2, 0]])
    g = Graph.from_matrices(alpha, s, states)
    np.testing.assert_array_equal(g.states(), [[0, 0], [1, 4], [2, 0], [-1, -1]])
    rep = g.as_matrices()
    np.testing.assert_array_equal(rep.states, states)
    np.testing.assert_array_equal(rep.ipv, alpha)
    for t in (0.0, 0.5, 3.0):
        assert g.cdf(t) == pytest.approx(dense_cdf(alpha, s, t), rel=PDF_RTOL)
    assert g.cdf(0.0) == pytest.approx(0.2, rel=PDF_RTOL)


def test_from_matrices_discrete() -> None:
    p = np.array([[0.2, 0.5], [0.0, 0.6]])
    alpha = np.array([0.9, 0.1])
    g = Graph.from_matrices(alpha, p - np.eye(2), discrete=True)
    assert g.discrete
    exit_p = 1.0 - p.sum(axis=1)
    ks = np.arange(1, 9)
    pmf = [alpha @ np.linalg.matrix_power(p, k - 1) @ exit_p for k in ks]
    np.testing.assert_allclose(g.pmf_discrete(ks), pmf, rtol=PDF_RTOL)
    np.testing.assert_allclose(g.cdf_discrete(ks), np.cumsum(pmf), rtol=PDF_RTOL)
    np.testing.assert_allclose(g.as_matrices().sim, p - np.eye(2), rtol=0, atol=1e-15)


@pytest.mark.parametrize(
    ("ipv", "sim", "states", "kwargs", "error", "message"),
    [
        ([1.0, 0.0], [[-1.0]], None, {}, ValueError, r"shape \(2, 2\)"),
        ([], np.zeros((0, 0)), None, {}, ValueError, "non-empty"),
        ([0.7, 0.7], -np.eye(2), None, {}, ValueError, "summing to at most 1"),
        ([1.2, -0.2], -np.eye(2), None, {}, ValueError, ">= 0"),
        ([1.0, 0.0], [[-1.0, -0.5], [0.0, -1.0]], None, {}, ValueError, r"sim\[0, 1\]"),
        ([1.0, 0.0], [[-1.0, 2.0], [0.0, -1.0]], None, {}, ValueError, "row 0 of sim"),
        ([1.0, 0.0], [[-1.0, np.nan], [0.0, -1.0]], None, {}, ValueError, "finite"),
        (["a"], [[-1.0]], None, {}, TypeError, "ipv must be numeric"),
        ([1.0], [[-1.5]], None, {"discrete": True}, ValueError, "P - I"),
        ([1.0, 0.0], -np.eye(2), [[0, 0], [1, 0]], {}, ValueError, "all zeros"),
        ([1.0, 0.0], -np.eye(2), [[1, 0], [1, 0]], {}, ValueError, "distinct"),
        ([1.0, 0.0], -np.eye(2), [[1, 0]], {}, ValueError, r"shape \(2, state_length\)"),
        ([1.0, 0.0], -np.eye(2), [[1.0, 0.5], [2.0, 0.0]], {}, TypeError, "integers"),
        ([1.0, 0.0], -np.eye(2), [[-1, -1], [1, 0]], {}, ValueError, r"\(-1, -1\)"),
    ],
)
def test_from_matrices_bad_input(ipv, sim, states, kwargs, error, message) -> None:
    with pytest.raises(error, match=message):
        Graph.from_matrices(np.asarray(ipv), np.asarray(sim), states, **kwargs)


# -- expected_waiting_time ------------------------------------------------------------


def test_expected_waiting_time_per_vertex() -> None:
    g = cyclic_graph()
    u = np.linalg.inv(-S)
    from_transient = u @ np.ones(3)
    w = g.expected_waiting_time(theta=THETA)
    assert w.shape == (5,)
    np.testing.assert_allclose(w[1:4], from_transient, rtol=1e-13)
    assert w[4] == 0.0  # absorbing
    assert w[0] == pytest.approx(ALPHA @ from_transient, rel=1e-13)
    assert w[0] == pytest.approx(g.expectation(THETA), rel=1e-12)
    rewards = np.array([7.0, 2.0, 1.0, 3.0, 9.0])  # start and absorbing rewards play no part
    wr = g.expected_waiting_time(rewards, theta=THETA)
    np.testing.assert_allclose(wr[1:4], u @ rewards[1:4], rtol=1e-13)
    assert wr[0] == pytest.approx(g.expectation(THETA, rewards), rel=1e-12)


def test_expected_waiting_time_discrete_counts_steps() -> None:
    p = np.array([[0.5, 0.25], [0.0, 0.8]])
    g = Graph.from_matrices([1.0, 0.0], p - np.eye(2), discrete=True)
    steps = np.linalg.solve(np.eye(2) - p, np.ones(2))
    np.testing.assert_allclose(g.expected_waiting_time()[1:3], steps, rtol=1e-13)
    assert g.expected_waiting_time()[0] == pytest.approx(g.expectation(), rel=1e-12)


def test_expected_waiting_time_errors() -> None:
    g = cyclic_graph()
    with pytest.raises(ValueError, match=r"one entry per vertex, shape \(5,\)"):
        g.expected_waiting_time([1.0, 2.0], theta=THETA)
    stuck = Graph(1)
    a = stuck.find_or_create_vertex([1])
    b = stuck.find_or_create_vertex([2])
    stuck.starting_vertex().add_edge(a, 1.0)
    a.add_edge(b, [1.0])
    with pytest.raises(ValueError, match="cannot reach an absorbing vertex"):
        stuck.expected_waiting_time(theta=[0.0])


# -- vertices, states, structure ------------------------------------------------------


def test_vertex_exists_and_create_vertex() -> None:
    g = cyclic_graph()
    assert g.vertex_exists([2, 0]) and g.vertex_exists((0, 0))
    assert not g.vertex_exists([5, 5])
    v = g.create_vertex([5, 5])
    assert v.index == 5 and v.state == (5, 5) and g.vertex_exists([5, 5])
    with pytest.raises(ValueError, match="already belongs to vertex 5"):
        g.create_vertex([5, 5])
    with pytest.raises(ValueError, match="already belongs to the starting vertex"):
        g.create_vertex([0, 0])
    with pytest.raises(ValueError, match="length 2"):
        g.vertex_exists([1])
    assert g.vertices_length() == 6


def test_states() -> None:
    g = cyclic_graph()
    st = g.states()
    assert st.dtype == np.int32 and st.shape == (5, 2)
    np.testing.assert_array_equal(st, [[0, 0], [1, 0], [2, 0], [1, 1], [0, 1]])
    np.testing.assert_array_equal(st, [v.state for v in g.vertices()])
    assert Graph(3).states().shape == (1, 3)


def test_is_acyclic() -> None:
    assert not cyclic_graph().is_acyclic()
    assert models.kingman(5).is_acyclic()
    assert Graph(1).is_acyclic()
    g = Graph(1)
    a, b, c = (g.find_or_create_vertex([i]) for i in (1, 2, 3))
    g.starting_vertex().add_edge(a, 1.0)
    a.add_edge(b, 1.0)
    b.add_edge(c, 1.0)
    assert g.is_acyclic()
    c.add_edge(a, 1.0)  # closes a -> b -> c -> a
    assert not g.is_acyclic()


@pytest.mark.parametrize("method", ["copy", "clone"])
def test_copy_and_clone_are_independent(method: str) -> None:
    g = cyclic_graph()
    h = getattr(g, method)()
    assert type(h) is Graph and h is not g
    assert h.to_json() == g.to_json()
    np.testing.assert_array_equal(h.moments(2, THETA), g.moments(2, THETA))
    h.create_vertex([9, 9])
    h.vertex_at(3).add_edge(h.find_vertex([9, 9]), 1.0)
    assert g.vertices_length() == 5 and h.vertices_length() == 6
    assert not g.vertex_exists([9, 9])


def test_discrete_names_check_the_graph_and_the_steps() -> None:
    g = cyclic_graph()
    with pytest.raises(TypeError, match=r"pmf_discrete\(\) is for discrete graphs"):
        g.pmf_discrete([1, 2], THETA)
    with pytest.raises(TypeError, match=r"cdf_discrete\(\) is for discrete graphs"):
        g.cdf_discrete(1, THETA)
    d = Graph.from_matrices([1.0], [[-0.5]], discrete=True)
    assert d.pmf_discrete(3) == pytest.approx(0.5**3, rel=1e-14)
    assert d.cdf_discrete(2) == pytest.approx(0.75, rel=1e-14)
    with pytest.raises(ValueError, match="whole numbers"):
        d.pmf_discrete([1.5])
    with pytest.raises(TypeError, match="numeric"):
        d.cdf_discrete(["x"])


def test_matrix_representation_is_exported() -> None:
    assert phasic.MatrixRepresentation is MatrixRepresentation
    assert "MatrixRepresentation" in phasic.__all__
