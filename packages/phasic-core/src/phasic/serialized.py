"""Upstream phasic's `Graph.to_json()` dict form, to and from our graph JSON document.

Upstream (0.32.1) serializes a graph as a dict of numpy arrays; code written for it
passes that dict to the FFI functions and to `Graph.from_serialized`. Its keys:

| key | dtype, shape | meaning |
| --- | --- | --- |
| `states` | int32 (n_vertices, state_length) | row i is the state of vertex i; row 0 is the starting vertex (all zeros) |
| `vertex_indices` | int32 (n_vertices,) | the vertex index of each row: 0, 1, ..., n_vertices - 1 |
| `start_edges` | float64 (k, 2) | `[to, weight]`: constant out-edges of the starting vertex |
| `start_param_edges` | float64 (k, 1 + param_length) | `[to, c_1, ..., c_p]`: starting-vertex edges of weight c · theta |
| `param_edges` | float64 (k, 2 + param_length) | `[from, to, c_1, ..., c_p]`: edges of weight c · theta |
| `edges` | float64 (k, 3) | `[from, to, weight]`: constant edges |
| `constant_edges` | float64 (k, 3) | `[from, to, weight]`: constant edges in a graph that also has parameterized ones |
| `param_length`, `state_length`, `n_vertices` | int | sizes |
| `weight_mode` | str | `"linear"` (weight = c · theta); the only mode we evaluate |
| `dyn_ordering` | bool | upstream's elimination-ordering switch; ours has no such switch, it is ignored |

Row and column indices count rows of `states`, so they are vertex indices. An empty
array may have shape (0,) or (0, any). Two rows for the same (from, to) pair are
parallel edges and add up (upstream evaluates them that way): our edge of weight
base + c · theta is written as a `param_edges` row (c) plus a constant row (base),
so the dict form holds every graph of ours.

We add two keys that upstream's reader ignores: `is_discrete` (bool; upstream keeps
the kind outside the dict, so a dict without it is read as continuous unless the
caller says otherwise) and `edge_order` (int64, one entry per row of the edge arrays
taken in the order start_edges, start_param_edges, param_edges, edges,
constant_edges: the position of the row's edge in our graph), so a round trip keeps
the order of the edges. Without `edge_order` the edges come in that row order.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

REQUIRED_KEYS = ("states", "edges", "start_edges", "param_edges", "start_param_edges",
                 "param_length", "state_length", "n_vertices")
OPTIONAL_KEYS = ("vertex_indices", "constant_edges", "weight_mode", "dyn_ordering",
                 "is_discrete", "edge_order")

# Most coefficients (edges x param_length) serialize() writes densely: 2 GiB of float64.
DENSE_LIMIT = 2**28

# The edge arrays in row order (see `edge_order`): key, leading index columns, and
# whether the rest of a row is coefficients (True) or one constant weight (False).
_EDGE_ARRAYS = (("start_edges", 1, False), ("start_param_edges", 1, True),
                ("param_edges", 2, True), ("edges", 2, False), ("constant_edges", 2, False))


def is_upstream_form(data: Mapping[str, Any]) -> bool:
    """True if `data` looks like upstream's serialize() dict rather than our JSON document."""
    return "format" not in data  # our document always names its format


# -- ours -> upstream's dict -----------------------------------------------------------

def to_upstream(doc: Mapping[str, Any], theta_dim: int | None = None) -> dict[str, Any]:
    """Upstream's dict form of our graph JSON document `doc` (already parsed).

    `theta_dim` (upstream's argument) sets `param_length`; it may exceed the graph's
    (the extra coefficient columns are zero) but not fall below it.
    """
    p = int(doc["param_length"])
    if theta_dim is not None:
        if isinstance(theta_dim, bool) or not isinstance(theta_dim, (int, np.integer)):
            raise TypeError(f"theta_dim must be an int or None, got {theta_dim!r}")
        if theta_dim < p:
            raise ValueError(
                f"theta_dim={theta_dim} is below the graph's param_length() = {p}: the "
                f"coefficients would not fit; pass theta_dim >= {p} or leave it out"
            )
        p = int(theta_dim)
    states = np.asarray(doc["states"], dtype=np.int32).reshape(
        len(doc["states"]), int(doc["state_length"]))
    edges = doc["edges"]
    if len(edges["from"]) * p > DENSE_LIMIT:
        raise ValueError(
            f"upstream's dict form stores coefficients densely: {len(edges['from'])} edges "
            f"x param_length {p} is more than {DENSE_LIMIT} numbers; use to_json() (sparse) "
            "for this graph"
        )
    coefficients = np.zeros((len(edges["from"]), p))
    coef = doc["coefficients"]
    for e, param, value in zip(coef["edge"], coef["param"], coef["value"], strict=True):
        coefficients[e, param] += value
    has_coefficients = coefficients.any(axis=1)

    rows: dict[str, list[list[float]]] = {key: [] for key, _, _ in _EDGE_ARRAYS}
    order: dict[str, list[int]] = {key: [] for key, _, _ in _EDGE_ARRAYS}
    constant_key = "constant_edges" if p > 0 else "edges"
    for e, (src, dst, base) in enumerate(zip(edges["from"], edges["to"], edges["weight"],
                                             strict=True)):
        ends = [dst] if src == 0 else [src, dst]
        if has_coefficients[e]:
            key = "start_param_edges" if src == 0 else "param_edges"
            rows[key].append(ends + coefficients[e].tolist())
            order[key].append(e)
        if base != 0.0 or not has_coefficients[e]:  # the constant part is its own row
            key = "start_edges" if src == 0 else constant_key
            rows[key].append(ends + [base])
            order[key].append(e)

    widths = {"start_edges": 2, "edges": 3, "constant_edges": 3,
              "start_param_edges": 1 + p if p else 0, "param_edges": 2 + p if p else 0}
    out: dict[str, Any] = {
        "states": states,
        "vertex_indices": np.arange(len(states), dtype=np.int32),
    }
    for key in ("edges", "constant_edges", "start_edges", "param_edges", "start_param_edges"):
        out[key] = np.array(rows[key], dtype=np.float64).reshape(len(rows[key]), widths[key])
    out.update(
        param_length=p,
        state_length=int(doc["state_length"]),
        n_vertices=len(states),
        weight_mode="linear",
        dyn_ordering=False,
        is_discrete=bool(doc["discrete"]),
        edge_order=np.array([e for key, _, _ in _EDGE_ARRAYS for e in order[key]],
                            dtype=np.int64),
    )
    return out


# -- upstream's dict -> ours -----------------------------------------------------------

def _count(data: Mapping[str, Any], key: str, minimum: int) -> int:
    value = data[key]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"serialized graph: '{key}' must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"serialized graph: '{key}' must be >= {minimum}, got {value}")
    return int(value)


def _numeric(data: Mapping[str, Any], key: str) -> np.ndarray:
    try:
        arr = np.asarray(data[key])
    except ValueError as exc:  # ragged nested lists
        raise ValueError(f"serialized graph: '{key}' is not a rectangular array ({exc})") from None
    if arr.size and arr.dtype.kind not in "iuf":
        raise TypeError(f"serialized graph: '{key}' must be numeric, got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"serialized graph: '{key}' holds a NaN or infinite value")
    return arr.astype(np.float64)


def _whole(values: np.ndarray, key: str, what: str) -> np.ndarray:
    if np.any(values != np.round(values)):
        bad = values[values != np.round(values)][0]
        raise ValueError(f"serialized graph: '{key}' {what} must be whole numbers, got {bad}")
    return values.astype(np.int64)


def _edge_array(data: Mapping[str, Any], key: str, n_index: int, width: int | None) -> np.ndarray:
    """Rows of an edge array; `width` None means n_index + at least one coefficient column."""
    if key not in data:
        return np.zeros((0, n_index + 1))
    arr = _numeric(data, key)
    if arr.size == 0:
        return np.zeros((0, n_index + 1 if width is None else width))
    if arr.ndim != 2 or (width is not None and arr.shape[1] != width):
        expect = f"(rows, {width})" if width is not None else f"(rows, {n_index} + param_length)"
        raise ValueError(f"serialized graph: '{key}' must have shape {expect}, got {arr.shape}")
    return arr


def _check_rows(arr: np.ndarray, key: str, n_index: int, n: int, p: int | None) -> np.ndarray:
    """The (from, to) vertex pairs of an edge array's rows, each checked.

    `n_index` is 1 for the starting vertex's arrays (from = 0 is implied); `p` is
    param_length for coefficient arrays (at least p coefficient columns, zeros beyond).
    """
    if p is not None and len(arr) and arr.shape[1] - n_index < p:
        raise ValueError(
            f"serialized graph: '{key}' has {arr.shape[1] - n_index} coefficient "
            f"column(s), fewer than param_length = {p}"
        )
    ends = _whole(arr[:, :n_index], key, "vertex index columns")
    if n_index == 1:
        ends = np.column_stack([np.zeros(len(arr), dtype=np.int64), ends])
    problems = (
        (np.any((ends < 0) | (ends >= n), axis=1), f"vertex index out of range (n_vertices = {n})"),
        (ends[:, 1] == 0, "an edge into vertex 0, the starting vertex"),
        (ends[:, 0] == ends[:, 1], "an edge from a vertex to itself"),
    )
    if p is not None:
        problems += ((np.any(arr[:, n_index + p:] != 0.0, axis=1),
                      f"a nonzero coefficient beyond param_length = {p}"),)
    for bad, what in problems:
        if bad.any():
            r = int(np.argmax(bad))
            raise ValueError(
                f"serialized graph: '{key}' row {r} (vertices {ends[r].tolist()}): {what}"
            )
    return ends


def _check_states(data: Mapping[str, Any], n: int, state_length: int) -> np.ndarray:
    states = _numeric(data, "states")
    if states.shape != (n, state_length) and not (states.size == 0 and n * state_length == 0):
        raise ValueError(
            f"serialized graph: 'states' must have shape (n_vertices, state_length) = "
            f"({n}, {state_length}), got {states.shape}"
        )
    states = _whole(states.reshape(n, state_length), "states", "entries")
    if np.any(states[0] != 0):
        raise ValueError(
            f"serialized graph: 'states' row 0 is the starting vertex and must be all "
            f"zeros, got {states[0].tolist()}"
        )
    if "vertex_indices" in data:
        indices = _numeric(data, "vertex_indices")
        if indices.shape != (n,) or np.any(indices != np.arange(n)):
            raise ValueError(
                f"serialized graph: 'vertex_indices' must be 0, 1, ..., {n - 1} (row i of "
                "'states' is vertex i, row 0 the starting vertex), got "
                f"{indices.tolist()[:10]}"
            )
    return states


def _check_options(data: Mapping[str, Any]) -> None:
    unknown = sorted(set(data) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if unknown:
        raise ValueError(
            f"serialized graph: unknown key(s) {unknown}; the keys are "
            f"{list(REQUIRED_KEYS + OPTIONAL_KEYS)}"
        )
    mode = data.get("weight_mode", "linear")
    if mode != "linear":
        raise ValueError(
            f"serialized graph: 'weight_mode' is {mode!r}; only 'linear' weights "
            "(weight = base + c · theta) are supported"
        )
    for key in ("dyn_ordering", "is_discrete"):
        if key in data and not isinstance(data[key], (bool, np.bool_)):
            raise TypeError(f"serialized graph: '{key}' must be a bool, got {data[key]!r}")


def from_upstream(data: Mapping[str, Any], discrete: bool | None = None) -> dict[str, Any]:
    """Our graph JSON document (a dict) from upstream's serialize() dict `data`.

    The kind comes from `data['is_discrete']`, else from `discrete`, else continuous.
    Parallel rows of one (from, to) pair are added into one edge. Every problem is a
    ValueError or TypeError naming the key (and row) at fault.
    """
    if not isinstance(data, Mapping):
        raise TypeError(f"a serialized graph must be a dict, got {type(data).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise ValueError(
            f"serialized graph: missing key(s) {missing}; Graph.serialize() writes them all "
            "(our JSON document, from Graph.to_json(), has a 'format' key instead)"
        )
    _check_options(data)
    n = _count(data, "n_vertices", 1)
    state_length = _count(data, "state_length", 0)
    p = _count(data, "param_length", 0)
    states = _check_states(data, n, state_length)

    merged: dict[tuple[int, int], list[Any]] = {}  # (from, to) -> [first row, base, coefficients]
    row = 0
    for key, n_index, has_coefficients in _EDGE_ARRAYS:
        arr = _edge_array(data, key, n_index, None if has_coefficients else n_index + 1)
        ends = _check_rows(arr, key, n_index, n, p if has_coefficients else None)
        values = arr[:, n_index:n_index + p] if has_coefficients else arr[:, n_index]
        for r, ((src, dst), value) in enumerate(zip(ends.tolist(), values.tolist(), strict=True)):
            slot = merged.get((src, dst))
            if slot is None:
                slot = merged[(src, dst)] = [row + r, 0.0, [0.0] * p]
            if has_coefficients:
                slot[2] = [a + b for a, b in zip(slot[2], value, strict=True)]
            else:
                slot[1] += value
        row += len(arr)

    positions = _edge_positions(data, row)
    ordered = sorted(merged.items(), key=lambda item: (positions[item[1][0]], item[1][0]))
    doc_edges: dict[str, list[Any]] = {"from": [], "to": [], "weight": []}
    doc_coefficients: dict[str, list[Any]] = {"edge": [], "param": [], "value": []}
    for e, ((src, dst), (_, base, coefficients)) in enumerate(ordered):
        doc_edges["from"].append(src)
        doc_edges["to"].append(dst)
        doc_edges["weight"].append(base)
        for param, value in enumerate(coefficients):
            if value != 0.0:
                doc_coefficients["edge"].append(e)
                doc_coefficients["param"].append(param)
                doc_coefficients["value"].append(value)
    kind = data.get("is_discrete", discrete)
    return {
        "format": "phasic.graph",
        "version": 1,
        "discrete": bool(kind),
        "state_length": state_length,
        "param_length": p,
        "states": states.tolist(),
        "edges": doc_edges,
        "coefficients": doc_coefficients,
    }


def _edge_positions(data: Mapping[str, Any], n_rows: int) -> np.ndarray:
    """Each edge row's position in the graph: `edge_order`, else its row number."""
    if "edge_order" not in data:
        return np.arange(n_rows)
    order = _numeric(data, "edge_order")
    if order.shape != (n_rows,) and not (order.size == 0 and n_rows == 0):
        raise ValueError(
            f"serialized graph: 'edge_order' must have one entry per edge row ({n_rows}), "
            f"got shape {order.shape}"
        )
    return _whole(order.reshape(n_rows), "edge_order", "entries")
