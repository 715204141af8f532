"""The Graph API: construction, callbacks, serialization round trip, errors."""

from __future__ import annotations

import json

import core_reference as reference
import numpy as np
import pytest

from phasic import Graph, models


def small_graph() -> Graph:
    g = Graph(2)
    a = g.find_or_create_vertex([1, 0])
    b = g.find_or_create_vertex((2, 0))
    c = g.find_or_create_vertex([0, 1])
    g.starting_vertex().add_edge(a, 1.0)
    a.add_edge(b, 2.0)
    a.add_edge(c, [0.5, 1.0])
    b.add_edge(c, [0.0, 3.0])
    return g


def test_vertices_and_edges() -> None:
    g = small_graph()
    assert g.state_length() == 2 and not g.discrete
    assert g.vertices_length() == 4
    assert g.param_length() == 2
    assert g.starting_vertex().index() == 0
    assert g.starting_vertex().state().tolist() == [0, 0]
    a = g.find_vertex([1, 0])
    assert a is not None and a.index() == 1 and a.state().tolist() == [1, 0]
    assert g.find_or_create_vertex([1, 0]) == a  # same state, same vertex
    assert g.vertices_length() == 4
    assert g.find_vertex([5, 5]) is None
    assert [v.index() for v in g.vertices()] == [0, 1, 2, 3]
    assert g.vertex_at(3).state().tolist() == [0, 1]
    edges = a.edges()

    def padded(c: tuple[float, ...]) -> list[float]:
        return list(c) + [0.0] * (2 - len(c))

    assert [(e.to().state().tolist(), e.base, padded(e.coefficients)) for e in edges] == [
        ([2, 0], 2.0, [0.0, 0.0]),
        ([0, 1], 0.0, [0.5, 1.0]),
    ]


def test_moments_follow_rate_formula() -> None:
    g = small_graph()
    theta = np.array([2.0, 1.0])
    # from (1,0): rates 2 (to b) and 0.5*2 + 1*1 = 2 (to c); from b: 3 -> E = 1/4 + 1/2 * 1/3
    assert g.expectation(theta=theta) == pytest.approx(0.25 + 0.5 / 3.0, rel=1e-14)
    np.testing.assert_allclose(g.moments(3, theta=theta), reference.moments(g, theta, 3),
                               rtol=1e-12)


def test_structure_cache_invalidated_on_change() -> None:
    g = small_graph()
    theta = np.array([2.0, 1.0])
    s1 = g.structure()
    assert g.structure() is s1  # cached
    e1 = g.expectation(theta=theta)
    d = g.find_or_create_vertex([3, 0])
    g.find_vertex([2, 0]).add_edge(d, 1.0)
    assert g.structure() is not s1
    assert g.expectation(theta=theta) != e1
    np.testing.assert_allclose(g.moments(2, theta=theta), reference.moments(g, theta, 2),
                               rtol=1e-12)


def test_serialize_round_trip() -> None:
    g = small_graph()
    text = g.to_json()
    doc = json.loads(text)
    assert doc["format"] == "phasic.graph" and doc["version"] == 1
    assert doc["states"][0] == [0, 0]
    h = Graph.from_json(text)
    assert h.to_json() == text
    assert Graph.from_json(doc).to_json() == text
    theta = np.array([1.5, 0.5])
    assert h.expectation(theta=theta) == g.expectation(theta=theta)
    assert [v.state().tolist() for v in h.vertices()] == [v.state().tolist() for v in g.vertices()]


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d.update(extra=1), "extra"),
    (lambda d: d.pop("states"), "states"),
    (lambda d: d["edges"]["to"].__setitem__(0, 99), "edges.to"),
    (lambda d: d.update(version=2), "version"),
    (lambda d: d["edges"]["weight"].__setitem__(0, "x"), "edges.weight"),
    (lambda d: d["coefficients"]["param"].__setitem__(0, 7), "coefficients.param"),
])
def test_from_json_is_strict(mutate, field: str) -> None:
    doc = json.loads(small_graph().to_json())
    mutate(doc)
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        Graph.from_json(json.dumps(doc))


def test_from_json_rejects_non_json() -> None:
    with pytest.raises(ValueError):
        Graph.from_json("{not json")
    with pytest.raises(TypeError):
        Graph.from_json(42)


def test_from_callback_merges_duplicate_transitions() -> None:
    def fn(state, rate):
        (k,) = state
        if k >= 3:
            return []
        # two routes to the same next state: their rates add
        return [((k + 1,), rate), ((k + 1,), [1.0])]

    g = Graph.from_callback(fn, (1,), rate=0.5)
    assert g.vertices_length() == 4 and g.param_length() == 1
    theta = np.array([1.5])
    assert g.expectation(theta=theta) == pytest.approx(2 * (1 / 2.0), rel=1e-14)


def test_from_callback_discrete() -> None:
    g = Graph.from_callback(lambda s: [] if s[0] == 2 else [((2,), 0.25)], (1,), discrete=True)
    assert g.discrete
    np.testing.assert_allclose(g.pmf([0, 1, 2, 3]), [0.0, 0.25, 0.1875, 0.140625],
                               rtol=1e-14)
    assert g.expectation() == pytest.approx(4.0, rel=1e-14)


def test_from_callback_errors() -> None:
    with pytest.raises(ValueError, match="include the state itself"):
        Graph.from_callback(lambda s: [(s, 1.0)], (1,))
    with pytest.raises(ValueError, match="length"):
        Graph.from_callback(lambda s: [((1, 2, 3), 1.0)], (1, 0))
    with pytest.raises(TypeError, match="not a transition"):
        Graph.from_callback(lambda s: [1.0], (1,))
    with pytest.raises(TypeError, match="callable"):
        Graph.from_callback(3, (1,))


def test_api_errors() -> None:
    g = small_graph()
    with pytest.raises(TypeError, match="state_length"):
        Graph("2")
    with pytest.raises(ValueError, match="length 2"):
        g.find_or_create_vertex([1, 2, 3])
    with pytest.raises(TypeError, match="ints"):
        g.find_or_create_vertex([1.5, 2])
    with pytest.raises(TypeError, match="weight"):
        g.vertex_at(1).add_edge(g.vertex_at(2), "fast")
    with pytest.raises(ValueError, match="finite"):
        g.vertex_at(1).add_edge(g.vertex_at(2), float("nan"))
    with pytest.raises(ValueError):  # duplicate edge (1 -> 2 exists)
        g.vertex_at(1).add_edge(g.vertex_at(2), 1.0)
    with pytest.raises(ValueError):  # self-loop
        g.vertex_at(1).add_edge(g.vertex_at(1), 1.0)
    with pytest.raises(ValueError):  # edge into the starting vertex
        g.vertex_at(1).add_edge(g.starting_vertex(), 1.0)
    with pytest.raises(IndexError, match="4 vertices"):
        g.vertex_at(9)
    with pytest.raises(ValueError, match="theta"):
        g.expectation()  # two parameters, no theta
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        g.expectation(theta=[1.0])
    with pytest.raises(ValueError, match="rewards"):
        g.expectation([1.0], theta=[1.0, 1.0])
    with pytest.raises(TypeError, match="pmf"):
        g.pmf([1, 2], theta=[1.0, 1.0])
    with pytest.raises(ValueError, match=">= 1"):
        g.moments(0, theta=[1.0, 1.0])
    other = Graph(2)
    with pytest.raises(ValueError, match="another graph"):
        g.vertex_at(1).add_edge(other.find_or_create_vertex([1, 0]), 1.0)
    d = Graph(1, discrete=True)
    with pytest.raises(TypeError, match="pdf"):
        d.pdf(1.0)


def test_scalar_times_give_scalars() -> None:
    g = models.kingman(4)
    assert isinstance(g.pdf(0.5, theta=[1.0]), float)
    assert isinstance(g.cdf(0.5, theta=[1.0]), float)
    assert g.pdf(np.array([[0.5, 1.0]]), theta=[1.0]).shape == (1, 2)
