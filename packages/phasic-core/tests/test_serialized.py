"""Upstream's dict form (`Graph.serialize()`, `Graph.from_serialized`, `phasic.serialized`).

Round trips on random graphs must give back the identical JSON; hand-written dicts in
upstream's layout are checked against closed forms (hypoexponential, exponential,
geometric); the FFI functions given the dict must equal the JSON path bit for bit
(the dict converts to the same canonical text, so the same kernel runs on it).
"""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from core_graphs import random_graph

from phasic import Graph, ffi, ffi_wrappers, models
from phasic.serialized import from_upstream

TIMES = np.array([0.05, 0.4, 1.0, 2.5])
THETAS = jnp.asarray(np.random.default_rng(7).uniform(0.5, 2.0, (3, 2)))


def same(a, b) -> None:
    """Bit-for-bit equality of two results (arrays or tuples of arrays)."""
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def assert_dicts_equal(got: dict, expected: dict) -> None:
    assert list(got) == list(expected)
    for key, value in expected.items():
        if isinstance(value, np.ndarray):
            assert got[key].dtype == value.dtype, key
            assert got[key].shape == value.shape, key
            np.testing.assert_array_equal(got[key], value, err_msg=key)
        else:
            assert type(got[key]) is type(value) and got[key] == value, key


# -- ours -> dict -> ours --------------------------------------------------------------

@pytest.mark.parametrize("discrete", [False, True], ids=["continuous", "discrete"])
@pytest.mark.parametrize("cyclic", [False, True], ids=["acyclic", "cyclic"])
@pytest.mark.parametrize("seed", range(8))
def test_round_trip_random_graphs(seed: int, cyclic: bool, discrete: bool) -> None:
    g = random_graph(seed, cyclic=cyclic, discrete=discrete).graph
    d = g.serialize()
    h = Graph.from_serialized(d)
    assert h.to_json() == g.to_json()
    assert_dicts_equal(h.serialize(), d)


def test_round_trip_through_json_lists() -> None:
    """A dict sent as JSON (arrays become lists) reads back to the same graph."""
    g = models.two_island(3)
    sent = json.loads(json.dumps({k: v.tolist() if isinstance(v, np.ndarray) else v
                                  for k, v in g.serialize().items()}))
    assert Graph.from_serialized(sent).to_json() == g.to_json()


def _mixed_graph() -> Graph:
    """Start edges (constant, coefficient), a base + c · theta edge, a constant edge."""
    return Graph.from_json({
        "format": "phasic.graph", "version": 1, "discrete": False,
        "state_length": 1, "param_length": 2,
        "states": [[0], [1], [2], [3]],
        "edges": {"from": [0, 1, 0, 2, 1], "to": [1, 2, 2, 3, 3],
                  "weight": [0.6, 0.5, 0.0, 0.25, 0.0]},
        "coefficients": {"edge": [2, 3, 3, 4], "param": [1, 0, 1, 1],
                         "value": [1.0, 2.0, 3.0, 4.0]},
    })


def test_layout_of_a_mixed_graph() -> None:
    d = _mixed_graph().serialize()
    assert_dicts_equal(d, {
        "states": np.array([[0], [1], [2], [3]], dtype=np.int32),
        "vertex_indices": np.array([0, 1, 2, 3], dtype=np.int32),
        "edges": np.zeros((0, 3)),
        "constant_edges": np.array([[1.0, 2.0, 0.5], [2.0, 3.0, 0.25]]),
        "start_edges": np.array([[1.0, 0.6]]),
        "param_edges": np.array([[2.0, 3.0, 2.0, 3.0], [1.0, 3.0, 0.0, 4.0]]),
        "start_param_edges": np.array([[2.0, 0.0, 1.0]]),
        "param_length": 2,
        "state_length": 1,
        "n_vertices": 4,
        "weight_mode": "linear",
        "dyn_ordering": False,
        "is_discrete": False,
        # rows: start_edges, start_param_edges, param_edges (2), constant_edges (2)
        "edge_order": np.array([0, 2, 3, 4, 1, 3], dtype=np.int64),
    })


def test_constant_graph_uses_edges_and_empty_coefficient_arrays() -> None:
    g = Graph(1)
    a, b = g.find_or_create_vertex([1]), g.find_or_create_vertex([2])
    g.starting_vertex().add_edge(a, 1.0)
    a.add_edge(b, 2.5)
    d = g.serialize()
    np.testing.assert_array_equal(d["edges"], [[1.0, 2.0, 2.5]])
    assert d["constant_edges"].shape == (0, 3)
    assert d["param_edges"].shape == (0, 0) and d["start_param_edges"].shape == (0, 0)
    assert d["param_length"] == 0


def test_theta_dim_pads_coefficients() -> None:
    g = _mixed_graph()
    d = g.serialize(theta_dim=3)
    assert d["param_length"] == 3
    np.testing.assert_array_equal(d["param_edges"], [[2, 3, 2, 3, 0], [1, 3, 0, 4, 0]])
    np.testing.assert_array_equal(d["start_param_edges"], [[2, 0, 1, 0]])
    assert Graph.from_serialized(d).param_length() == 3
    with pytest.raises(ValueError, match=r"theta_dim=1 is below the graph's param_length\(\) = 2"):
        g.serialize(theta_dim=1)
    with pytest.raises(TypeError, match="theta_dim must be an int"):
        g.serialize(theta_dim=2.0)


def test_state_length_zero_and_too_dense() -> None:
    g = Graph(0)
    assert Graph.from_serialized(g.serialize()).to_json() == g.to_json()
    wide = Graph.from_json({
        "format": "phasic.graph", "version": 1, "discrete": False, "state_length": 1,
        "param_length": 2**24, "states": [[0], [1], [2]],
        "edges": {"from": [0, 1], "to": [1, 2], "weight": [1.0, 0.0]},
        "coefficients": {"edge": [1], "param": [2**24 - 1], "value": [1.0]},
    })
    with pytest.raises(ValueError, match=r"stores coefficients densely.*use to_json\(\)"):
        wide.serialize(theta_dim=2**27 + 1)


# -- hand-written dicts in upstream's layout ---------------------------------------------

def _hypoexponential_dict() -> dict:
    """start -> 1 (0.75) or -> 3 (0.25, mass at 0); 1 -> 2 at 1.5 θ0 (two parallel rows);
    2 -> 3 at 2 θ1 + 0.5 (a coefficient row and a constant row). Written as upstream does."""
    return {
        "states": np.array([[0], [1], [2], [3]], dtype=np.int32),
        "vertex_indices": np.arange(4, dtype=np.int32),
        "edges": np.empty((0, 3)),
        "constant_edges": np.array([[2.0, 3.0, 0.5]]),
        "start_edges": np.array([[1.0, 0.75], [3.0, 0.25]]),
        "param_edges": np.array([[1.0, 2.0, 1.0, 0.0], [2.0, 3.0, 0.0, 2.0],
                                 [1.0, 2.0, 0.5, 0.0]]),
        "start_param_edges": np.empty((0, 3)),
        "param_length": 2, "state_length": 1, "n_vertices": 4,
        "weight_mode": "linear", "dyn_ordering": False,
    }


def _hypoexponential(theta: np.ndarray) -> tuple[float, float]:
    return 1.5 * theta[0], 2.0 * theta[1] + 0.5


def test_hand_written_dict_hypoexponential_with_defect() -> None:
    theta = np.array([1.3, 0.7])
    a, b = _hypoexponential(theta)
    moments = 0.75 * np.array([
        1 / a + 1 / b,
        2 * (1 / a**2 + 1 / (a * b) + 1 / b**2),
        6 * (1 / a**3 + 1 / (a**2 * b) + 1 / (a * b**2) + 1 / b**3),
    ])
    density = 0.75 * a * b / (b - a) * (np.exp(-a * TIMES) - np.exp(-b * TIMES))
    d = _hypoexponential_dict()
    g = Graph.from_serialized(d)
    assert g.vertices_length() == 4 and g.edges_length() == 4  # parallel rows merged
    np.testing.assert_allclose(g.moments(3, theta=theta), moments, rtol=1e-13)
    np.testing.assert_allclose(g.pdf(TIMES, theta=theta), density, rtol=1e-12)
    np.testing.assert_allclose(ffi.compute_moments_ffi(d, theta, 3), moments, rtol=1e-13)
    np.testing.assert_allclose(ffi_wrappers.compute_pmf_ffi(d, theta, TIMES, False, 100),
                               density, rtol=1e-12)


def test_hand_written_constant_dict_exponential() -> None:
    d = {
        "states": [[0, 0], [1, 0], [0, 1]], "vertex_indices": [0, 1, 2],
        "edges": [[1, 2, 2.5]], "constant_edges": [], "start_edges": [[1, 1.0]],
        "param_edges": np.empty((0, 0)), "start_param_edges": np.empty((0, 0)),
        "param_length": 0, "state_length": 2, "n_vertices": 3,
    }
    np.testing.assert_allclose(ffi.compute_moments_ffi(d, jnp.zeros(0), 2), [0.4, 0.32],
                               rtol=1e-14)
    np.testing.assert_allclose(ffi.compute_pmf_ffi(d, jnp.zeros(0), TIMES),
                               2.5 * np.exp(-2.5 * TIMES), rtol=1e-13)


def _geometric_dict(**extra) -> dict:
    """start -> 1; 1 -> 2 (absorbing) with probability θ0, else stay: a geometric law."""
    return {
        "states": np.array([[0], [1], [2]], dtype=np.int32),
        "vertex_indices": np.arange(3, dtype=np.int32),
        "edges": np.empty((0, 3)), "constant_edges": np.empty((0, 3)),
        "start_edges": np.array([[1.0, 1.0]]), "param_edges": np.array([[1.0, 2.0, 1.0]]),
        "start_param_edges": np.empty((0, 2)),
        "param_length": 1, "state_length": 1, "n_vertices": 3, **extra,
    }


def test_hand_written_discrete_dict_geometric() -> None:
    p = 0.3
    k = np.array([1.0, 2.0, 3.0, 7.0])
    pmf = (1 - p) ** (k - 1) * p
    theta = jnp.array([p])
    # upstream keeps the kind outside the dict: the FFI call's `discrete` decides
    np.testing.assert_allclose(ffi.compute_pmf_ffi(_geometric_dict(), theta, k, True), pmf,
                               rtol=1e-14)
    assert not Graph.from_serialized(_geometric_dict()).discrete
    g = Graph.from_serialized(_geometric_dict(is_discrete=True))
    assert g.discrete
    np.testing.assert_allclose(g.pmf(k, theta=[p]), pmf, rtol=1e-14)
    with pytest.raises(ValueError, match="discrete=False but the structure is a discrete"):
        ffi.compute_pmf_ffi(_geometric_dict(is_discrete=True), theta, k, False)


def test_rows_keep_their_vertex_positions() -> None:
    """Row i is vertex i, whatever its state: an all-zero state in row 3 stays vertex 3."""
    d = _hypoexponential_dict()
    d["states"] = np.array([[0], [2], [1], [0]], dtype=np.int32)
    doc = from_upstream(d)
    assert doc["states"] == [[0], [2], [1], [0]]
    assert doc["edges"] == {"from": [0, 0, 1, 2], "to": [1, 3, 2, 3],
                            "weight": [0.75, 0.25, 0.0, 0.5]}
    assert doc["coefficients"] == {"edge": [2, 3], "param": [0, 1], "value": [1.5, 2.0]}


# -- FFI with the dict: bit for bit the JSON path ------------------------------------

def test_dict_converts_to_the_graphs_own_json(island) -> None:
    js, g = island
    assert ffi._structure_text(g.serialize()) == js  # one cache key, one structure
    assert ffi._structure_text(_hypoexponential_dict()) == ffi._structure_text(
        _hypoexponential_dict())


def test_ffi_pmf_dict_equals_json_under_jit_vmap_grad(island) -> None:
    js, g = island
    d = g.serialize()
    theta = THETAS[0]
    t = jnp.asarray(TIMES)
    same(ffi_wrappers.compute_pmf_ffi(d, theta, t, False, 100), ffi.compute_pmf_ffi(js, theta, t))
    same(jax.jit(lambda th: ffi_wrappers.compute_pmf_ffi(d, th, t, False, 100))(theta),
         jax.jit(lambda th: ffi.compute_pmf_ffi(js, th, t))(theta))
    same(jax.jit(jax.vmap(lambda th: ffi_wrappers.compute_pmf_ffi(d, th, t, False, 100)))(THETAS),
         jax.vmap(lambda th: ffi.compute_pmf_ffi(js, th, t))(THETAS))
    same(jax.grad(lambda th: ffi.compute_pmf_ffi(d, th, t).sum())(theta),
         jax.grad(lambda th: ffi.compute_pmf_ffi(js, th, t).sum())(theta))
    same(ffi.compute_log_pmf_ffi(d, theta, t), ffi.compute_log_pmf_ffi(js, theta, t))


def test_ffi_moments_dict_equals_json_under_jit_vmap_grad(island) -> None:
    js, g = island
    d = g.serialize()
    same(jax.vmap(lambda th: ffi_wrappers.compute_moments_ffi(d, th, 3))(THETAS),
         jax.vmap(lambda th: ffi.compute_moments_ffi(js, th, 3))(THETAS))
    same(jax.jit(jax.vmap(lambda th: ffi_wrappers.compute_moments_ffi(d, th, 3)))(THETAS),
         jax.vmap(lambda th: ffi.compute_moments_ffi(js, th, 3))(THETAS))
    same(jax.jacrev(lambda th: ffi.compute_moments_ffi(d, th, 2))(THETAS[1]),
         jax.jacrev(lambda th: ffi.compute_moments_ffi(js, th, 2))(THETAS[1]))
    same(ffi_wrappers.compute_pmf_and_moments_ffi(d, THETAS[2], TIMES, 2, False, 100),
         ffi.compute_pmf_and_moments_ffi(js, THETAS[2], TIMES, 2))


def test_ffi_discrete_dict_equals_json(discrete_case) -> None:
    js, g, theta = discrete_case
    d = g.serialize()
    k = jnp.array([0.0, 1.0, 2.0, 5.0])
    same(ffi.compute_pmf_ffi(d, theta, k, True), ffi.compute_pmf_ffi(js, theta, k, True))
    same(jax.grad(lambda th: ffi.compute_pmf_ffi(d, th, k, True).sum())(jnp.asarray(theta)),
         jax.grad(lambda th: ffi.compute_pmf_ffi(js, th, k, True).sum())(jnp.asarray(theta)))


def test_hand_written_dict_gradient_matches_closed_form() -> None:
    theta = jnp.array([1.3, 0.7])
    a, b = _hypoexponential(np.asarray(theta))
    # E[T] = 0.75 (1/a + 1/b), a = 1.5 θ0, b = 2 θ1 + 0.5
    expected = 0.75 * np.array([-1.5 / a**2, -2.0 / b**2])
    got = jax.grad(lambda th: ffi.compute_moments_ffi(_hypoexponential_dict(), th, 1)[0])(theta)
    np.testing.assert_allclose(got, expected, rtol=1e-13)


# -- bad input ---------------------------------------------------------------------------

def _without(key: str):
    return lambda d: {k: v for k, v in d.items() if k != key}


def _with(**changes):
    return lambda d: {**d, **changes}


BAD = {
    "missing key": (_without("start_edges"), ValueError, r"missing key\(s\) \['start_edges'\]"),
    "unknown key": (_with(colour=1), ValueError, r"unknown key\(s\) \['colour'\]"),
    "n_vertices type": (_with(n_vertices=4.0), TypeError, "'n_vertices' must be an int"),
    "n_vertices zero": (_with(n_vertices=0), ValueError, "'n_vertices' must be >= 1"),
    "states shape": (_with(states=np.zeros((3, 1))), ValueError,
                     r"'states' must have shape \(n_vertices, state_length\) = \(4, 1\)"),
    "states fraction": (_with(states=np.array([[0], [1.5], [2], [3]])), ValueError,
                        "'states' entries must be whole numbers, got 1.5"),
    "start state": (_with(states=np.array([[1], [1], [2], [3]])), ValueError,
                    "'states' row 0 is the starting vertex and must be all zeros"),
    "vertex_indices": (_with(vertex_indices=np.array([1, 0, 2, 3])), ValueError,
                       r"'vertex_indices' must be 0, 1, ..., 3"),
    "edges width": (_with(edges=np.zeros((1, 4))), ValueError,
                    r"'edges' must have shape \(rows, 3\), got \(1, 4\)"),
    "nan weight": (_with(constant_edges=np.array([[2.0, 3.0, np.nan]])), ValueError,
                   "'constant_edges' holds a NaN or infinite value"),
    "text weight": (_with(constant_edges=[["2", "3", "x"]]), TypeError,
                    "'constant_edges' must be numeric"),
    "ragged": (_with(constant_edges=[[2.0, 3.0], [1.0]]), ValueError,
               "'constant_edges' is not a rectangular array"),
    "index range": (_with(start_edges=np.array([[4.0, 1.0]])), ValueError,
                    r"'start_edges' row 0 \(vertices \[0, 4\]\): vertex index out of range"),
    "index fraction": (_with(param_edges=np.array([[1.5, 2.0, 1.0, 0.0]])), ValueError,
                       "'param_edges' vertex index columns must be whole numbers, got 1.5"),
    "into start": (_with(constant_edges=np.array([[2.0, 0.0, 1.0]])), ValueError,
                   r"'constant_edges' row 0 \(vertices \[2, 0\]\): an edge into vertex 0"),
    "self-loop": (_with(constant_edges=np.array([[2.0, 2.0, 1.0]])), ValueError,
                  r"'constant_edges' row 0 \(vertices \[2, 2\]\): an edge from a vertex to itself"),
    "few coefficients": (_with(param_edges=np.array([[1.0, 2.0, 1.0]])), ValueError,
                         "'param_edges' has 1 coefficient column.*fewer than param_length = 2"),
    "extra coefficient": (_with(param_edges=np.array([[1.0, 2.0, 1.0, 0.0, 3.0]])), ValueError,
                          r"'param_edges' row 0 \(vertices \[1, 2\]\): a nonzero coefficient beyond"),
    "weight mode": (_with(weight_mode="log"), ValueError, "'weight_mode' is 'log'; only 'linear'"),
    "kind type": (_with(is_discrete="yes"), TypeError, "'is_discrete' must be a bool"),
    "edge_order length": (_with(edge_order=np.arange(3)), ValueError,
                          r"'edge_order' must have one entry per edge row \(6\)"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_dicts_name_the_key(case: str) -> None:
    change, error, message = BAD[case]
    bad = change(_hypoexponential_dict())
    with pytest.raises(error, match=message):
        Graph.from_serialized(bad)
    with pytest.raises(error, match=message):  # the FFI functions read it the same way
        ffi.compute_moments_ffi(bad, jnp.array([1.0, 1.0]), 1)
    # the process goes on: the good dict still works
    assert math.isfinite(float(ffi.compute_moments_ffi(_hypoexponential_dict(),
                                                       jnp.array([1.0, 1.0]), 1)[0]))


def test_not_a_dict() -> None:
    with pytest.raises(TypeError, match="a serialized graph must be a dict, got list"):
        Graph.from_serialized([1, 2])
    with pytest.raises(TypeError, match=r"upstream's dict \(Graph.serialize\(\)\), got list"):
        ffi.compute_moments_ffi([1, 2], jnp.array([1.0]), 1)
