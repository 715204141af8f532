"""Graphs as matrices: `Graph.as_matrices`'s result type and `Graph.from_matrices`'s work.

An initial probability vector and a sub-intensity matrix S (or P - I for a discrete
chain) over the transient states, as upstream phasic exchanges them.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

# Relative slack when a row of a sub-intensity matrix is checked for a negative exit:
# -(S_ii + sum of the row's off-diagonal) is a difference of floats.
_ROW_SUM_TOLERANCE = 1e-12


class MatrixRepresentation(NamedTuple):
    """A graph as matrices over its transient vertices, as `Graph.as_matrices` returns it.

    Row i describes the vertex `vertex_at(indices[i] - 1)`: `indices` are 1-based,
    as upstream phasic returns them, and count the starting vertex (index 0).
    """

    ipv: np.ndarray  # initial probability of each transient vertex
    sim: np.ndarray  # sub-intensity matrix S (continuous) or P - I (discrete)
    states: np.ndarray  # (rows, state_length) int32: the state of each row
    indices: np.ndarray  # int32: vertex index + 1 of each row


def _checked_matrices(ipv: Any, sim: Any, discrete: bool) -> tuple[np.ndarray, np.ndarray]:
    """(ipv, sim) as float arrays, checked to describe a (sub-)stochastic chain."""
    alpha, matrix = np.asarray(ipv), np.asarray(sim)
    for name, arr in (("ipv", alpha), ("sim", matrix)):
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
    alpha, matrix = alpha.astype(np.float64), matrix.astype(np.float64)
    if alpha.ndim != 1 or alpha.shape[0] == 0:
        raise ValueError(f"ipv must be a non-empty vector, got shape {alpha.shape}")
    n = alpha.shape[0]
    if matrix.shape != (n, n):
        raise ValueError(
            f"sim must be square with one row per ipv entry, shape ({n}, {n}), got "
            f"shape {matrix.shape}"
        )
    if not (np.all(np.isfinite(alpha)) and np.all(np.isfinite(matrix))):
        raise ValueError("ipv and sim must be finite")
    if np.any(alpha < 0) or alpha.sum() > 1.0 + _ROW_SUM_TOLERANCE:
        raise ValueError(
            f"ipv must be probabilities (>= 0, summing to at most 1), got {alpha.tolist()} "
            f"(sum {alpha.sum()})"
        )
    off = matrix - np.diag(np.diag(matrix))
    bad = np.argwhere(off < 0)
    if bad.size:
        i, j = bad[0]
        raise ValueError(
            f"sim[{i}, {j}] = {matrix[i, j]} is negative; off-diagonal entries are rates "
            "(or probabilities) and must be >= 0"
        )
    for i in range(n):
        leaving = -float(matrix[i].sum())
        if leaving < -_ROW_SUM_TOLERANCE * max(1.0, abs(matrix[i, i])):
            raise ValueError(
                f"row {i} of sim sums to {-leaving} > 0; the diagonal must be at most "
                "minus the sum of the row's off-diagonal entries"
            )
        if discrete and -matrix[i, i] > 1.0 + _ROW_SUM_TOLERANCE:
            raise ValueError(
                f"sim[{i}, {i}] = {matrix[i, i]} < -1; for a discrete graph sim is P - I, "
                "so a row's out-probabilities sum to -sim[i, i] <= 1"
            )
    return alpha, matrix


def _checked_states(states: Any, n: int) -> list[tuple[int, ...]]:
    """`from_matrices` states: n distinct integer rows of one length."""
    arr = np.asarray(states)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"states must be integers, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[0] != n or arr.shape[1] == 0:
        raise ValueError(
            f"states must have shape ({n}, state_length) with state_length >= 1, one row "
            f"per ipv entry, got shape {arr.shape}"
        )
    rows = [tuple(int(x) for x in row) for row in arr]
    if len(set(rows)) != n:
        raise ValueError("states must be distinct: each row identifies one vertex")
    return rows


def graph_from_matrices(graph_cls: Any, ipv: Any, sim: Any, states: Any, discrete: bool) -> Any:
    """Build a `graph_cls` graph from (ipv, sim); see `Graph.from_matrices`."""
    alpha, matrix = _checked_matrices(ipv, sim, discrete)
    n = alpha.shape[0]
    if states is None:
        rows = [(i,) for i in range(n)]  # upstream's defaults: states [0], [1], ...
        sink = (n,)
    else:
        rows = _checked_states(states, n)
        # Upstream's absorbing state is all zeros; when a row already has that state,
        # (-1, ..., -1) keeps the two vertices apart.
        sink = (0,) * len(rows[0])
        if sink in rows:
            sink = (-1,) * len(rows[0])
            if sink in rows:
                raise ValueError(
                    f"states contain both {(0,) * len(sink)} and {sink}: from_matrices "
                    "gives one of them to the absorbing vertex it adds"
                )
    graph = graph_cls(len(sink), discrete=discrete)
    vertices = [graph.create_vertex(state) for state in rows]
    absorbing = graph.create_vertex(sink)
    start = graph.starting_vertex()
    for i in range(n):
        if alpha[i] > 0:
            start.add_edge(vertices[i], float(alpha[i]))
    # Start weights are relative (normalized by their sum), so the mass ipv leaves
    # out becomes an explicit start edge into the absorbing vertex: mass at T = 0.
    remainder = 1.0 - math.fsum(alpha)
    if remainder > _ROW_SUM_TOLERANCE:
        start.add_edge(absorbing, remainder)
    for i in range(n):
        for j in range(n):
            if i != j and matrix[i, j] > 0:
                vertices[i].add_edge(vertices[j], float(matrix[i, j]))
        leaving = -float(matrix[i].sum())
        if leaving > _ROW_SUM_TOLERANCE * max(1.0, abs(matrix[i, i])):
            vertices[i].add_edge(absorbing, leaving)
    return graph
