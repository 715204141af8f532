"""Vertices and edges of a `Graph`, and the checks on states and weights they share.

A `Vertex` is a handle (its graph and index); an `Edge` is a snapshot of one out-edge
read from the C++ builder. Both spell their accessors as upstream phasic does
(`v.state()`, `v.index()`, `e.to()`, `e.weight()`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .graph import Graph

Weight = float | Sequence[float]

@dataclass(frozen=True)
class Edge:
    """An out-edge: its target vertex, constant part `base` and sparse coefficients.

    The weight for theta is `base + sum(c * theta[p] for p, c in terms)`; `weight()`
    evaluates it at the theta stored by `Graph.update_weights`.
    """

    _to: Vertex
    base: float
    terms: tuple[tuple[int, float], ...]  # (parameter index, coefficient), sparse
    param_length: int  # the graph's param_length when the edge was read

    def to(self) -> Vertex:
        """The vertex this edge leads to."""
        return self._to

    def weight(self) -> float:
        """The weight at the graph's stored theta (see `Graph.update_weights`).

        A constant edge needs no theta; an edge with coefficients raises a ValueError
        when no theta is stored.
        """
        if not self.terms:
            return self.base
        theta = self._to._graph._stored_theta(
            "Edge.weight() of an edge with coefficients needs")
        return self.base + sum(c * float(theta[p]) for p, c in self.terms)

    @property
    def coefficients(self) -> tuple[float, ...]:
        """The coefficient vector c as a dense tuple of length `param_length`.

        Costs O(param_length) per call; `terms` holds the same coefficients sparsely.
        """
        dense = [0.0] * self.param_length
        for p, c in self.terms:
            dense[p] += c
        return tuple(dense)


class Vertex:
    """A vertex of a `Graph`, identified by its index (0 is the starting vertex)."""

    __slots__ = ("_graph", "_index")

    def __init__(self, graph: Graph, index: int) -> None:
        self._graph = graph
        self._index = int(index)

    def index(self) -> int:
        """Position of this vertex in the graph (and in reward vectors)."""
        return self._index

    @property
    def graph(self) -> Graph:
        """The graph this vertex belongs to."""
        return self._graph

    def state(self) -> np.ndarray:
        """The state vector of this vertex, as a new int32 array (changing it changes nothing)."""
        return np.asarray(self._graph._builder.vertex_state(self._index), dtype=np.int32)

    def add_edge(self, to: Vertex | int, weight: Weight) -> None:
        """Add an edge to `to`.

        `weight` is a float (a constant rate or probability) or a sequence of floats
        c (the weight is c · theta, evaluated for each theta).
        """
        self._graph._add_edge(self._index, to, weight)

    def add_edge_parameterized(self, to: Vertex | int, weight: float,
                               edge_state: Sequence[float]) -> None:
        """Add an edge to `to` whose weight is `weight + edge_state · theta`.

        `weight` is the constant part (a float) and `edge_state` the coefficient
        vector c (a flat sequence of floats), so the weight for theta is
        `weight + sum(c[p] * theta[p])`. (Upstream phasic drops `weight` once theta is
        set; here it always counts, so pass 0.0 for a purely parameterized edge.)
        """
        if not isinstance(weight, (int, float, np.integer, np.floating)) or isinstance(
                weight, (bool, np.bool_)):
            raise TypeError(
                f"add_edge_parameterized: weight is the constant part of the edge weight, "
                f"a float; got {type(weight).__name__} (the coefficients go in edge_state)"
            )
        if isinstance(edge_state, (int, float, bool, np.number, np.bool_)):
            raise TypeError(
                f"add_edge_parameterized: edge_state must be a sequence of floats (one "
                f"coefficient per parameter), got the scalar {edge_state!r}; use [{edge_state!r}]"
            )
        constant, _ = _split_weight(weight)
        _, coefficients = _split_weight(edge_state)
        self._graph._add_edge_parts(self._index, to, constant, coefficients)

    def edges(self) -> list[Edge]:
        """The out-edges of this vertex, in insertion order."""
        builder = self._graph._builder
        p = builder.param_length()
        return [Edge(Vertex(self._graph, dst), float(w),
                     tuple(zip(map(int, params), map(float, values), strict=True)), p)
                for dst, w, params, values in builder.out_edges(self._index)]

    def rate(self) -> float:
        """The total out-weight of this vertex at the graph's stored theta.

        For a continuous graph the rate of leaving the vertex; 0 for an absorbing one.
        """
        return float(sum(edge.weight() for edge in self.edges()))

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Vertex) and other._graph is self._graph
                and other._index == self._index)

    def __hash__(self) -> int:
        return hash((id(self._graph), self._index))

    def __repr__(self) -> str:
        return f"Vertex(index={self._index}, state={self.state().tolist()})"


def _as_state(state: Iterable[int], state_length: int) -> list[int]:
    """Validate a state vector: a sequence of `state_length` ints."""
    if isinstance(state, (str, bytes)) or not isinstance(state, Iterable):
        raise TypeError(f"a state must be a sequence of {state_length} ints, got {state!r}")
    out = []
    for x in state:
        if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, np.integer)):
            raise TypeError(f"state entries must be ints, got {x!r} in state {state!r}")
        out.append(int(x))
    if len(out) != state_length:
        raise ValueError(
            f"state {tuple(out)} has length {len(out)}; this graph's states have "
            f"length {state_length}"
        )
    return out


def _split_weight(weight: Weight) -> tuple[float, list[float]]:
    """A weight as (constant, coefficients): a float is a constant, a sequence is c."""
    if isinstance(weight, (bool, np.bool_)):
        raise TypeError("an edge weight must be a float or a sequence of floats, not a bool")
    if isinstance(weight, (int, float, np.integer, np.floating)):
        value = float(weight)
        if not math.isfinite(value):
            raise ValueError(f"edge weight must be finite, got {value}")
        return value, []
    if isinstance(weight, np.ndarray) and weight.ndim == 0:
        return _split_weight(float(weight))
    if isinstance(weight, (str, bytes)) or not isinstance(weight, (Sequence, np.ndarray)):
        raise TypeError(
            f"an edge weight must be a float (a constant) or a sequence of floats "
            f"(coefficients c, weight = c · theta), got {type(weight).__name__}"
        )
    coefficients = np.asarray(weight, dtype=np.float64)
    if coefficients.ndim != 1:
        raise ValueError(
            f"edge coefficients must be a flat sequence of floats, got shape "
            f"{coefficients.shape}"
        )
    if not np.all(np.isfinite(coefficients)):
        raise ValueError(f"edge coefficients must be finite, got {coefficients.tolist()}")
    return 0.0, coefficients.tolist()
