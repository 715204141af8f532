"""Upstream phasic's Graph names on our Graph, checked against dense matrix formulas.

The graphs are small and written down by hand together with their sub-intensity
matrix S (or sub-transition matrix P) and initial vector alpha, so every reference
value comes from numpy/scipy on those hand-written matrices, never from phasic.
PDF and CDF values are compared at 1e-10, the relative error the kernels guarantee
(docs/pages/accuracy.md); everything else at 1e-12 or tighter. The matrix names
(as_matrices, from_matrices, expected_waiting_time) are in test_upstream_matrices.py.
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
from phasic import Graph, MatrixRepresentation, models

# -- vertices, states, structure ------------------------------------------------------


def test_vertex_exists_and_create_vertex() -> None:
    g = cyclic_graph()
    assert g.vertex_exists([2, 0]) and not g.vertex_exists((0, 0))
    assert not g.vertex_exists([5, 5])
    v = g.create_vertex([5, 5])
    assert v.index() == 5 and v.state().tolist() == [5, 5] and g.vertex_exists([5, 5])
    with pytest.raises(ValueError, match="already belongs to vertex 5"):
        g.create_vertex([5, 5])
    zero = g.create_vertex([0, 0])  # the starting vertex is not found by its state
    assert zero == g.vertex_at(6) and g.find_vertex([0, 0]) == zero
    with pytest.raises(ValueError, match="length 2"):
        g.vertex_exists([1])
    assert g.vertices_length() == 7


def test_states() -> None:
    g = cyclic_graph()
    st = g.states()
    assert st.dtype == np.int32 and st.shape == (5, 2)
    np.testing.assert_array_equal(st, [[0, 0], [1, 0], [2, 0], [1, 1], [0, 1]])
    np.testing.assert_array_equal(st, [v.state() for v in g.vertices()])
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
    np.testing.assert_array_equal(h.moments(2, theta=THETA), g.moments(2, theta=THETA))
    h.create_vertex([9, 9])
    h.vertex_at(3).add_edge(h.find_vertex([9, 9]), 1.0)
    assert g.vertices_length() == 5 and h.vertices_length() == 6
    assert not g.vertex_exists([9, 9])


@pytest.mark.parametrize("make", [Graph.copy, Graph.clone, Graph])
def test_copies_keep_the_stored_theta_apart(make) -> None:
    g = cyclic_graph()
    g.update_weights(THETA)
    h = make(g)
    u = np.linalg.inv(-S)
    assert h.expectation() == pytest.approx(ALPHA @ u @ np.ones(3), rel=1e-13)
    h.update_weights([3.0, 0.25])  # the copy's theta is its own
    np.testing.assert_array_equal(g.moments(2), g.moments(2, theta=THETA))


def test_discrete_names_check_the_graph_and_the_steps() -> None:
    g = cyclic_graph()
    with pytest.raises(TypeError, match=r"pmf_discrete\(\) is for discrete graphs"):
        g.pmf_discrete([1, 2], theta=THETA)
    with pytest.raises(TypeError, match=r"cdf_discrete\(\) is for discrete graphs"):
        g.cdf_discrete(1, theta=THETA)
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


# -- upstream's vertex and edge names -------------------------------------------------

# The out-edges of cyclic_graph() as (target index, weight at THETA), read off S above.
EDGES_AT_THETA = {0: [(1, 0.7), (2, 0.3)], 1: [(2, 3.0), (4, 1.0)], 2: [(1, 0.5), (3, 3.0)],
                  3: [(4, 1.0)], 4: []}


def test_vertex_state_index_and_edges_are_methods() -> None:
    g = cyclic_graph()
    b = g.vertex_at(2)
    state = b.state()
    assert isinstance(state, np.ndarray) and state.dtype == np.int32
    assert state.tolist() == [2, 0] and b.index() == 2
    state[0] = 7  # a copy: the graph keeps its state
    assert b.state().tolist() == [2, 0] and g.find_vertex([2, 0]) == b
    (to_a, to_c) = b.edges()
    assert isinstance(to_a.to(), phasic.Vertex) and to_a.to() == g.vertex_at(1)
    assert to_c.to().state().tolist() == [1, 1]
    assert g.state_length() == 2 and Graph(5).state_length() == 5


def test_edge_weight_base_and_coefficients() -> None:
    g = cyclic_graph()
    a_to_b, a_to_d = g.vertex_at(1).edges()
    # a constant edge has a weight without theta; base is its constant part
    assert a_to_d.weight() == 1.0 and a_to_d.base == 1.0 and a_to_d.terms == ()
    assert a_to_b.base == 0.0 and a_to_b.terms == ((0, 2.0),)
    assert a_to_b.coefficients == (2.0, 0.0)
    with pytest.raises(ValueError, match=r"Edge\.weight\(\).*update_weights\(theta\)"):
        a_to_b.weight()
    g.update_weights(THETA)
    for vertex in g.vertices():
        got = [(e.to().index(), e.weight()) for e in vertex.edges()]
        assert got == EDGES_AT_THETA[vertex.index()]


def test_vertex_rate_is_the_total_out_weight() -> None:
    g = cyclic_graph()
    assert g.vertex_at(2).rate() == 3.5  # constant edges only: no theta needed
    with pytest.raises(ValueError, match="update_weights"):
        g.vertex_at(1).rate()
    g.update_weights(THETA)
    rates = [g.vertex_at(i).rate() for i in range(1, 4)]
    np.testing.assert_array_equal(rates, -np.diag(S))
    assert g.starting_vertex().rate() == 1.0 and g.vertex_at(4).rate() == 0.0


def test_is_discrete_is_a_property_like_discrete() -> None:
    assert cyclic_graph().is_discrete is False
    d = Graph(1, discrete=True)
    assert d.is_discrete is True and d.discrete is True


# -- stored theta ---------------------------------------------------------------------


def test_stored_theta_is_used_by_every_method() -> None:
    g = cyclic_graph()
    g.update_weights(THETA)
    u = np.linalg.inv(-S)
    ones = np.ones(3)
    moments = [math.factorial(k) * ALPHA @ np.linalg.matrix_power(u, k) @ ones
               for k in (1, 2, 3)]
    np.testing.assert_allclose(g.moments(3), moments, rtol=1e-12)
    assert g.expectation() == pytest.approx(moments[0], rel=1e-12)
    assert g.variance() == pytest.approx(moments[1] - moments[0] ** 2, rel=1e-12)
    for t in (0.2, 1.5):
        assert g.pdf(t) == pytest.approx(dense_pdf(ALPHA, S, t), rel=PDF_RTOL)
        assert g.cdf(t) == pytest.approx(dense_cdf(ALPHA, S, t), rel=PDF_RTOL)
    np.testing.assert_array_equal(g.as_matrices().sim, S)
    np.testing.assert_allclose(g.expected_waiting_time()[1:4], u @ ones, rtol=1e-13)
    assert g.defect() == 0.0
    # an explicit theta wins over the stored one, and leaves it stored
    other = np.array([3.0, 0.5])
    s_other = S.copy()
    s_other[0, 0], s_other[0, 1] = -7.0, 6.0  # a: to b at 2 * 3, to d at 1
    s_other[2, 2] = -2.0  # c: to d at 4 * 0.5
    assert g.expectation(theta=other) == pytest.approx(
        ALPHA @ np.linalg.inv(-s_other) @ ones, rel=1e-12)
    assert g.expectation() == pytest.approx(moments[0], rel=1e-12)


def test_update_weights_stores_a_validated_copy() -> None:
    g = cyclic_graph()
    theta = THETA.copy()
    g.update_weights(theta)
    theta[0] = 100.0  # changing the caller's array afterwards changes nothing
    np.testing.assert_array_equal(g.as_matrices().sim, S)
    g.update_parameterized_weights([1.5, 0.25])  # upstream's second name
    np.testing.assert_array_equal(g.as_matrices().sim, S)
    g.update_weights(np.array([1, 2], dtype=np.int64))  # ints become float64
    assert g.vertex_at(1).edges()[0].weight() == 2.0
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        g.update_weights([1.0])
    with pytest.raises(TypeError, match="numeric"):
        g.update_weights(["a", "b"])
    with pytest.raises(ValueError, match="needs a theta"):
        g.update_weights(None)
    assert g.vertex_at(1).edges()[0].weight() == 2.0  # a rejected theta keeps the old one


def test_stored_theta_survives_changes_that_keep_param_length() -> None:
    g = cyclic_graph()
    g.update_weights(THETA)
    e = g.find_or_create_vertex([3, 0])
    g.vertex_at(3).add_edge(e, [0.0, 2.0])  # c -> e at 2 * theta1 = 0.5; e is absorbing
    s = S.copy()
    s[2, 2] = -1.5
    assert g.expectation() == pytest.approx(ALPHA @ np.linalg.inv(-s) @ np.ones(3), rel=1e-12)
    g.vertex_at(2).add_edge(e, [0.0, 0.0, 1.0])  # a third parameter: the stored theta is stale
    with pytest.raises(ValueError, match=r"stored by update_weights has 2 entries.*"
                                         r"param_length\(\) = 3.*update_weights again"):
        g.expectation()
    with pytest.raises(ValueError, match="update_weights again"):
        g.vertex_at(1).edges()[0].weight()
    g.update_weights([1.5, 0.25, 0.0])
    assert g.expectation() == pytest.approx(ALPHA @ np.linalg.inv(-s) @ np.ones(3), rel=1e-12)


def test_no_theta_and_none_stored_is_a_clear_error() -> None:
    g = cyclic_graph()
    for call in (g.expectation, g.as_matrices, g.defect, lambda: g.pdf(1.0)):
        with pytest.raises(ValueError, match=r"2 parameter\(s\).*pass theta=.*update_weights"):
            call()


# -- signatures -----------------------------------------------------------------------

# upstream's positional parameters; theta= and epochs= (piecewise-constant theta in time)
# are our keyword-only additions, so every upstream call still binds the same way
SIGNATURES = {
    "moments": "(power, rewards=None, discrete=None, *, theta=None, epochs=None)",
    "expectation": "(rewards=None, *, theta=None, epochs=None)",
    "variance": "(rewards=None, *, theta=None, epochs=None)",
    "pdf": "(time, granularity=0, *, theta=None, epochs=None)",
    "cdf": "(time, granularity=0, *, theta=None, epochs=None)",
    "pmf": "(k, *, theta=None)",
    "pmf_discrete": "(k, *, theta=None)",
    "cdf_discrete": "(k, *, theta=None)",
    "as_matrices": "(*, theta=None)",
    "expected_waiting_time": "(rewards=None, *, theta=None)",
    "defect": "(rewards=None, *, theta=None)",
    "update_weights": "(theta)",
    "normalize": "()",
}


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_signatures_are_upstreams(name: str) -> None:
    import inspect

    signature = inspect.signature(getattr(cyclic_graph(), name))
    plain = signature.replace(parameters=[p.replace(annotation=inspect.Parameter.empty)
                                          for p in signature.parameters.values()],
                              return_annotation=inspect.Signature.empty)
    assert str(plain) == SIGNATURES[name]


def test_granularity_is_accepted_and_changes_nothing() -> None:
    g = cyclic_graph()
    t = np.array([0.3, 2.0])
    for granularity in (0, 1, 100, np.int64(5)):
        np.testing.assert_array_equal(g.pdf(t, granularity, theta=THETA),
                                      g.pdf(t, theta=THETA))
        np.testing.assert_array_equal(g.cdf(t, granularity=granularity, theta=THETA),
                                      g.cdf(t, theta=THETA))
    with pytest.raises(ValueError, match="granularity must be an int >= 0, got -1"):
        g.pdf(t, -1, theta=THETA)
    for bad in (1.5, True, "100", None):
        with pytest.raises(TypeError, match="granularity must be an int >= 0"):
            g.cdf(t, bad, theta=THETA)


def test_discrete_argument_must_match_the_graph() -> None:
    g = cyclic_graph()
    m = g.moments(2, theta=THETA)
    np.testing.assert_array_equal(g.moments(2, None, False, theta=THETA), m)
    with pytest.raises(TypeError, match=r"discrete=True but this graph is continuous"):
        g.moments(2, discrete=True, theta=THETA)
    with pytest.raises(TypeError, match="discrete must be None or a bool"):
        g.moments(2, discrete="yes", theta=THETA)
    d = Graph.from_matrices([1.0], [[-0.5]], discrete=True)
    np.testing.assert_allclose(d.moments(1, discrete=True), [2.0], rtol=1e-14)
    with pytest.raises(TypeError, match=r"discrete=False but this graph is discrete"):
        d.moments(1, None, False)


def test_an_old_positional_theta_is_not_taken_for_rewards() -> None:
    g = cyclic_graph()
    # the old call g.moments(3, theta): theta lands on rewards, whose length is checked
    with pytest.raises(ValueError, match=r"rewards must have vertices_length\(\) = 5"):
        g.moments(3, THETA, theta=THETA)
    with pytest.raises(ValueError, match=r"got shape \(2,\) \(theta is not positional"):
        g.expectation(THETA, theta=THETA)
    with pytest.raises(TypeError, match=r"granularity must be an int >= 0, got \[1.5, 0.25\] "
                                        r"\(theta is not positional: pass it as theta=\)"):
        g.pdf(1.0, [1.5, 0.25])  # the old g.pdf(t, theta)
    with pytest.raises(TypeError):
        g.pdf(1.0, 0, THETA)  # theta is keyword-only


# -- rewards ------------------------------------------------------------------------------


def test_rewards_have_one_entry_per_vertex_counting_the_start() -> None:
    g = cyclic_graph()
    r = np.array([5.0, 2.0, 0.0, 3.0, 8.0])  # index 0 (start) and 4 (absorbing): unused
    ur = np.linalg.inv(-S) @ np.diag(r[1:4])
    ones = np.ones(3)
    want = [ALPHA @ ur @ ones, 2.0 * ALPHA @ ur @ ur @ ones]
    np.testing.assert_allclose(g.moments(2, r, theta=THETA), want, rtol=1e-12)
    assert g.expectation(r, theta=THETA) == pytest.approx(want[0], rel=1e-12)
    assert g.variance(rewards=r, theta=THETA) == pytest.approx(want[1] - want[0] ** 2,
                                                               rel=1e-12)
    # upstream's default rewards=[] means no rewards
    np.testing.assert_array_equal(g.moments(2, [], theta=THETA), g.moments(2, theta=THETA))
    message = (r"rewards must have vertices_length\(\) = 5 entries, one per vertex, where "
               r"index 0 is the starting vertex .*got shape \(4,\)")
    for call in (lambda: g.moments(1, r[1:], theta=THETA),
                 lambda: g.expected_waiting_time(r[1:], theta=THETA)):
        with pytest.raises(ValueError, match=message):
            call()
    with pytest.raises(TypeError, match="rewards must be numeric"):
        g.expectation(["a"] * 5, theta=THETA)


# -- normalize --------------------------------------------------------------------------


def constant_graph() -> Graph:
    """cyclic_graph() at THETA with every weight a constant, so normalize() applies."""
    g = Graph(2)
    vertices = [g.starting_vertex()] + [g.find_or_create_vertex(s)
                                        for s in ([1, 0], [2, 0], [1, 1], [0, 1])]
    for src, edges in EDGES_AT_THETA.items():
        for dst, w in edges:
            vertices[src].add_edge(vertices[dst], w)
    return g


def test_normalize_scales_out_weights_to_one() -> None:
    g = constant_graph()
    a = g.vertex_at(1)
    factors = g.normalize()
    assert factors == [1.0, 1 / 4.0, 1 / 3.5, 1.0, 1.0]  # 1.0 where nothing leaves (d)
    # the embedded jump chain: each row of S divided by its total out-rate
    s_jump = S / -np.diag(S)[:, None]
    rep = g.as_matrices()
    np.testing.assert_array_equal(rep.ipv, ALPHA)
    np.testing.assert_allclose(rep.sim, s_jump, rtol=0, atol=1e-15)
    assert [e.weight() for e in a.edges()] == [0.75, 0.25]  # old Vertex objects still work
    assert g.vertex_at(2).rate() == pytest.approx(1.0, abs=1e-15)
    u = np.linalg.inv(-s_jump)
    assert g.expectation() == pytest.approx(ALPHA @ u @ np.ones(3), rel=1e-12)
    assert g.normalize() == pytest.approx([1.0] * 5, abs=1e-15)  # already normalized


def test_normalize_of_a_discrete_graph_drops_the_stay_probability() -> None:
    p = np.array([[0.2, 0.5], [0.0, 0.6]])  # row 0 leaves with 0.5 + 0.3, row 1 with 0.4
    g = Graph.from_matrices([1.0, 0.0], p - np.eye(2), discrete=True)
    factors = g.normalize()
    np.testing.assert_allclose(factors, [1.0, 1 / 0.8, 1 / 0.4, 1.0], rtol=1e-15)
    # row 0 now moves to row 1 with 0.5 / 0.8 and exits with 0.3 / 0.8; row 1 exits at once
    p_norm = np.array([[0.0, 0.625], [0.0, 0.0]])
    exit_p = 1.0 - p_norm.sum(axis=1)
    ks = np.arange(1, 5)
    pmf = [np.array([1.0, 0.0]) @ np.linalg.matrix_power(p_norm, k - 1) @ exit_p for k in ks]
    np.testing.assert_allclose(g.pmf_discrete(ks), pmf, rtol=1e-14, atol=1e-15)


def test_normalize_rejects_coefficient_edges_and_keeps_the_graph() -> None:
    g = cyclic_graph()

    def edges() -> list:
        return [(e.to().index(), e.base, e.terms) for v in g.vertices() for e in v.edges()]

    before = edges()
    with pytest.raises(ValueError, match=r"edge 1 -> 2 has coefficients"):
        g.normalize()
    assert edges() == before
    bad = Graph(1)
    bad.starting_vertex().add_edge(bad.find_or_create_vertex([1]), -1.0)
    with pytest.raises(ValueError, match=r"weights >= 0; edge 0 -> 1 has weight -1.0"):
        bad.normalize()


# -- defect -----------------------------------------------------------------------------


def test_defect_is_the_start_weight_share_into_absorbing_vertices() -> None:
    g = defect_graph()
    assert g.defect() == pytest.approx(0.4, rel=1e-15)
    assert g.cdf(0.0) == pytest.approx(0.4, rel=PDF_RTOL)  # P(T = 0) is the defect
    assert cyclic_graph().defect(theta=THETA) == 0.0


def test_defect_with_theta_dependent_start_weights() -> None:
    g = Graph(1)
    a = g.find_or_create_vertex([1])
    done = g.find_or_create_vertex([2])
    g.starting_vertex().add_edge(a, [1.0, 0.0])  # relative weights theta0 : theta1
    g.starting_vertex().add_edge(done, [0.0, 1.0])
    a.add_edge(done, 1.0)
    assert g.defect(theta=[3.0, 1.0]) == pytest.approx(0.25, rel=1e-15)
    g.update_weights([1.0, 4.0])
    assert g.defect() == pytest.approx(0.8, rel=1e-15)
    with pytest.raises(ValueError, match=r"weights sum to 0.0 at theta.*finite and > 0"):
        g.defect(theta=[0.0, 0.0])
    with pytest.raises(ValueError, match="no out-edges.*add an edge from the starting vertex"):
        Graph(1).defect()  # no start edge at all
