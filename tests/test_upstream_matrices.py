"""Upstream phasic's matrix names (as_matrices, from_matrices, expected_waiting_time),
checked against dense matrix formulas on hand-written graphs.

PDF and CDF values are compared at 1e-10, the relative error the kernels guarantee
(docs/pages/accuracy.md); everything else at 1e-12 or tighter.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from upstream_graphs import (
    ALPHA,
    PDF_RTOL,
    THETA,
    S,
    cyclic_graph,
    defect_graph,
    dense_cdf,
    dense_pdf,
)

import phasic
from phasic import Graph, MatrixRepresentation

# -- as_matrices -----------------------------------------------------------------------


def test_as_matrices_is_the_hand_written_matrix() -> None:
    rep = cyclic_graph().as_matrices(theta=THETA)
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
    rep = g.as_matrices(theta=THETA)
    for t in (0.1, 0.7, 2.0, 6.0):
        assert g.pdf(t, theta=THETA) == pytest.approx(dense_pdf(rep.ipv, rep.sim, t), rel=PDF_RTOL)
        assert g.cdf(t, theta=THETA) == pytest.approx(dense_cdf(rep.ipv, rep.sim, t), rel=PDF_RTOL)
    u = np.linalg.inv(-S)
    expected = [math.factorial(k) * ALPHA @ np.linalg.matrix_power(u, k) @ np.ones(3)
                for k in (1, 2, 3)]
    np.testing.assert_allclose(g.moments(3, theta=THETA), expected, rtol=1e-12)


def test_as_matrices_leaves_start_edges_into_absorption_as_a_defect() -> None:
    rep = defect_graph().as_matrices()
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
    rep = g.as_matrices(theta=[0.4])
    np.testing.assert_allclose(rep.sim, p - np.eye(2), rtol=0, atol=1e-15)


def test_as_matrices_rejects_bad_theta_and_negative_weights() -> None:
    g = cyclic_graph()
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        g.as_matrices(theta=[1.0])
    with pytest.raises(ValueError, match="pass theta"):
        g.as_matrices()
    g2 = Graph(1)
    a = g2.find_or_create_vertex([1])
    b = g2.find_or_create_vertex([2])
    g2.starting_vertex().add_edge(a, 1.0)
    a.add_edge(b, [-1.0])
    with pytest.raises(ValueError, match=r"edge 1 -> 2 has weight -2.0"):
        g2.as_matrices(theta=[2.0])


# -- from_matrices ---------------------------------------------------------------------


def test_from_matrices_default_states_and_round_trip() -> None:
    g = Graph.from_matrices(ALPHA, S)
    assert not g.discrete and g.state_length() == 1
    # the starting vertex, then upstream's defaults: (i,) for row i and (n,) for the sink
    np.testing.assert_array_equal(g.states(), [[0], [0], [1], [2], [3]])
    assert g.vertex_at(4).edges() == []
    rep = g.as_matrices()
    np.testing.assert_array_equal(rep.ipv, ALPHA)
    np.testing.assert_allclose(rep.sim, S, rtol=0, atol=1e-15)
    for t in (0.3, 1.0, 4.0):
        assert g.pdf(t) == pytest.approx(dense_pdf(ALPHA, S, t), rel=PDF_RTOL)


def test_from_matrices_with_states_and_a_defect() -> None:
    alpha = np.array([0.5, 0.3])  # 0.2 of the mass is absorbed at T = 0
    s = np.array([[-2.0, 1.5], [0.0, -0.5]])
    states = np.array([[1, 4], [0, 0]])  # an all-zero state is an ordinary vertex
    g = Graph.from_matrices(alpha, s, states)
    # the sink takes (-1, -1) because a row already has upstream's all-zero sink state
    np.testing.assert_array_equal(g.states(), [[0, 0], [1, 4], [0, 0], [-1, -1]])
    other = Graph.from_matrices(alpha, s, np.array([[1, 4], [2, 0]]))
    np.testing.assert_array_equal(other.states(), [[0, 0], [1, 4], [2, 0], [0, 0]])
    with pytest.raises(ValueError, match=r"both \(0, 0\) and \(-1, -1\)"):
        Graph.from_matrices(alpha, s, np.array([[-1, -1], [0, 0]]))
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
        ([1.0, 0.0], -np.eye(2), [[1, 0], [1, 0]], {}, ValueError, "distinct"),
        ([1.0, 0.0], -np.eye(2), [[1, 0]], {}, ValueError, r"shape \(2, state_length\)"),
        ([1.0, 0.0], -np.eye(2), [[1.0, 0.5], [2.0, 0.0]], {}, TypeError, "integers"),
        ([1.0, 0.0], -np.eye(2), [[0, 0], [-1, -1]], {}, ValueError, r"both \(0, 0\) and \(-1, -1\)"),
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
    assert w[0] == pytest.approx(g.expectation(theta=THETA), rel=1e-12)
    rewards = np.array([7.0, 2.0, 1.0, 3.0, 9.0])  # start and absorbing rewards play no part
    wr = g.expected_waiting_time(rewards, theta=THETA)
    np.testing.assert_allclose(wr[1:4], u @ rewards[1:4], rtol=1e-13)
    assert wr[0] == pytest.approx(g.expectation(rewards, theta=THETA), rel=1e-12)


def test_expected_waiting_time_discrete_counts_steps() -> None:
    p = np.array([[0.5, 0.25], [0.0, 0.8]])
    g = Graph.from_matrices([1.0, 0.0], p - np.eye(2), discrete=True)
    steps = np.linalg.solve(np.eye(2) - p, np.ones(2))
    np.testing.assert_allclose(g.expected_waiting_time()[1:3], steps, rtol=1e-13)
    assert g.expected_waiting_time()[0] == pytest.approx(g.expectation(), rel=1e-12)


def test_expected_waiting_time_satisfies_first_step_analysis_on_a_large_graph() -> None:
    # Kingman n = 20 (628 vertices): no dense solve; every transient entry must satisfy
    # u_v = r_v / lambda_v + sum_w (rate_vw / lambda_v) u_w, and entry 0 is E[Y].
    g = phasic.models.kingman(20)
    theta = np.array([1.3])
    rewards = phasic.models.kingman_sfs_rewards(g, 3)
    u = g.expected_waiting_time(rewards, theta=theta)
    assert u[0] == pytest.approx(g.expectation(rewards, theta=theta), rel=1e-12)
    checked = 0
    for v in g.vertices()[1:]:
        out = [(e.to().index(), float(e.base + np.dot(e.coefficients, theta)))
               for e in v.edges()]
        if not out:
            assert u[v.index()] == 0.0
            continue
        lam = sum(w for _, w in out)
        step = rewards[v.index()] / lam + sum(w / lam * u[i] for i, w in out)
        assert u[v.index()] == pytest.approx(step, rel=1e-12)
        checked += 1
    assert checked == g.vertices_length() - 2


def test_expected_waiting_time_errors() -> None:
    g = cyclic_graph()
    with pytest.raises(ValueError,
                       match=r"vertices_length\(\) = 5 entries.*index 0 is the starting vertex"):
        g.expected_waiting_time([1.0, 2.0], theta=THETA)
    stuck = Graph(1)
    a = stuck.find_or_create_vertex([1])
    b = stuck.find_or_create_vertex([2])
    stuck.starting_vertex().add_edge(a, 1.0)
    a.add_edge(b, [1.0])
    with pytest.raises(ValueError, match="(?i)absor"):
        stuck.expected_waiting_time(theta=[0.0])
