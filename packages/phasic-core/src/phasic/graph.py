"""The graph model: states, edges and the distributions they define.

A `Graph` is a thin Python layer over the C++ `GraphBuilder`. Vertex 0 is the
starting vertex; its out-edges are the initial distribution. Every other vertex
with no out-edges is absorbing. Edge weights are rates (continuous graphs) or
transition probabilities (discrete graphs); a weight is either a constant or a
coefficient vector c, giving the weight c · theta for a parameter vector theta.

Moments, PDF/PMF and CDF are computed by the same C++ kernels the FFI functions
use, through a compiled `Structure` that is cached until the graph changes.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._ext import core
from .matrices import MatrixRepresentation, graph_from_matrices

Weight = float | Sequence[float]

@dataclass(frozen=True)
class Edge:
    """An out-edge: its target vertex, constant weight and sparse coefficients.

    The weight for theta is `weight + sum(c * theta[p] for p, c in terms)`.
    """

    to: Vertex
    weight: float
    terms: tuple[tuple[int, float], ...]  # (parameter index, coefficient), sparse
    param_length: int  # the graph's param_length when the edge was read

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

    @property
    def index(self) -> int:
        """Position of this vertex in the graph (and in reward vectors)."""
        return self._index

    @property
    def graph(self) -> Graph:
        """The graph this vertex belongs to."""
        return self._graph

    @property
    def state(self) -> tuple[int, ...]:
        """The state vector of this vertex."""
        return tuple(self._graph._builder.vertex_state(self._index))

    def add_edge(self, to: Vertex | int, weight: Weight) -> None:
        """Add an edge to `to`.

        `weight` is a float (a constant rate or probability) or a sequence of floats
        c (the weight is c · theta, evaluated for each theta).
        """
        self._graph._add_edge(self._index, to, weight)

    def edges(self) -> list[Edge]:
        """The out-edges of this vertex, in insertion order."""
        builder = self._graph._builder
        p = builder.param_length()
        return [Edge(Vertex(self._graph, dst), float(w),
                     tuple(zip(map(int, params), map(float, values), strict=True)), p)
                for dst, w, params, values in builder.out_edges(self._index)]

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Vertex) and other._graph is self._graph
                and other._index == self._index)

    def __hash__(self) -> int:
        return hash((id(self._graph), self._index))

    def __repr__(self) -> str:
        return f"Vertex(index={self._index}, state={self.state})"


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


class Graph:
    """A phase-type distribution described as a graph of states.

    `Graph(state_length, discrete=False)` makes an empty graph holding only the
    starting vertex (the all-zero state). Add vertices with `find_or_create_vertex`
    and edges with `Vertex.add_edge`, or build the whole state space with
    `Graph.from_callback`.
    """

    def __init__(self, state_length: int, *, discrete: bool = False) -> None:
        if isinstance(state_length, bool) or not isinstance(state_length, (int, np.integer)):
            raise TypeError(f"state_length must be an int, got {state_length!r}")
        if state_length < 0:
            raise ValueError(f"state_length must be >= 0, got {state_length}")
        if not isinstance(discrete, (bool, np.bool_)):
            raise TypeError(f"discrete must be a bool, got {discrete!r}")
        self._builder = core().GraphBuilder(int(state_length), bool(discrete))
        self._structure: Any = None
        self._json: str | None = None

    @classmethod
    def _wrap(cls, builder: Any) -> Graph:
        """A Graph over an existing C++ GraphBuilder."""
        graph = cls.__new__(cls)
        graph._builder = builder
        graph._structure = None
        graph._json = None
        return graph

    def _changed(self) -> None:
        """Drop what was derived from the structure (compiled form, JSON)."""
        self._structure = None
        self._json = None

    # -- structure -----------------------------------------------------------------

    @property
    def state_length(self) -> int:
        """Length of every state vector."""
        return int(self._builder.state_length)

    @property
    def discrete(self) -> bool:
        """True for a discrete-time chain, False for continuous time."""
        return bool(self._builder.discrete)

    def starting_vertex(self) -> Vertex:
        """The starting vertex (index 0); its out-edges are the initial distribution."""
        return Vertex(self, 0)

    def find_or_create_vertex(self, state: Iterable[int]) -> Vertex:
        """The vertex with this state, created if absent."""
        values = _as_state(state, self.state_length)
        before = self._builder.vertices_length()
        index = self._builder.find_or_create_vertex(values)
        if self._builder.vertices_length() != before:
            self._changed()
        return Vertex(self, index)

    def find_vertex(self, state: Iterable[int]) -> Vertex | None:
        """The vertex with this state, or None if there is none."""
        index = self._builder.find_vertex(_as_state(state, self.state_length))
        return None if index < 0 else Vertex(self, index)

    def vertex_exists(self, state: Iterable[int]) -> bool:
        """True if a vertex has this state (the all-zero state is the starting vertex)."""
        return self.find_vertex(state) is not None

    def create_vertex(self, state: Iterable[int]) -> Vertex:
        """A new vertex with this state; a ValueError if the state already has one.

        States identify vertices, so a second vertex with the same state cannot exist;
        `find_or_create_vertex` returns the existing one instead.
        """
        values = _as_state(state, self.state_length)
        existing = self._builder.find_vertex(values)
        if existing >= 0:
            which = "the starting vertex" if existing == 0 else f"vertex {existing}"
            raise ValueError(
                f"state {tuple(values)} already belongs to {which}; states identify "
                "vertices, use find_or_create_vertex to get the existing one"
            )
        return self.find_or_create_vertex(values)

    def vertex_at(self, index: int) -> Vertex:
        """The vertex at position `index`."""
        n = self.vertices_length()
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"vertex index must be an int, got {index!r}")
        if not 0 <= index < n:
            raise IndexError(f"vertex index {index} out of range (the graph has {n} vertices)")
        return Vertex(self, int(index))

    def vertices(self) -> list[Vertex]:
        """All vertices, the starting vertex first."""
        return [Vertex(self, i) for i in range(self.vertices_length())]

    def states(self) -> np.ndarray:
        """The state of every vertex as an int32 array of shape (vertices_length(), state_length).

        Row i is the state of `vertex_at(i)`; row 0 is the starting vertex (all zeros).
        """
        n = self.vertices_length()
        out = np.zeros((n, self.state_length), dtype=np.int32)
        for i in range(n):
            out[i] = self._builder.vertex_state(i)
        return out

    def vertices_length(self) -> int:
        """Number of vertices, including the starting vertex."""
        return int(self._builder.vertices_length())

    def edges_length(self) -> int:
        """Number of edges."""
        return int(self._builder.edges_length())

    def param_length(self) -> int:
        """Length of theta: the longest coefficient vector used by any edge."""
        return int(self._builder.param_length())

    def is_acyclic(self) -> bool:
        """True if no vertex can return to itself along the edges (Kahn's algorithm)."""
        n = self.vertices_length()
        successors = [[int(edge[0]) for edge in self._builder.out_edges(i)] for i in range(n)]
        in_degree = [0] * n
        for targets in successors:
            for dst in targets:
                in_degree[dst] += 1
        ready = [i for i in range(n) if in_degree[i] == 0]
        removed = 0
        while ready:
            vertex = ready.pop()
            removed += 1
            for dst in successors[vertex]:
                in_degree[dst] -= 1
                if in_degree[dst] == 0:
                    ready.append(dst)
        # Vertices left with incoming edges lie on (or behind) a cycle.
        return removed == n

    def _add_edge(self, src: int, to: Vertex | int, weight: Weight) -> None:
        if isinstance(to, Vertex):
            if to._graph is not self:
                raise ValueError("cannot add an edge to a vertex of another graph")
            dst = to._index
        elif isinstance(to, (int, np.integer)) and not isinstance(to, bool):
            dst = int(to)
        else:
            raise TypeError(f"an edge target must be a Vertex, got {type(to).__name__}")
        constant, coefficients = _split_weight(weight)
        self._builder.add_edge(src, dst, constant, coefficients)
        self._changed()

    # -- construction ----------------------------------------------------------------

    @classmethod
    def from_callback(
        cls,
        fn: Callable[..., Iterable[tuple[Sequence[int], Weight]]],
        initial_state: Sequence[int],
        *,
        discrete: bool = False,
        **kwargs: Any,
    ) -> Graph:
        """Build the state space breadth-first from `fn`.

        `fn(state, **kwargs)` receives a state (a tuple of ints) and returns its
        transitions `[(next_state, weight_or_coefficients), ...]`; an empty list makes
        the state absorbing. The starting vertex moves to `initial_state` with
        probability 1. Transitions from one state to the same next state are summed.
        """
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        start = tuple(_as_state(initial_state, len(initial_state)))
        graph = cls(len(start), discrete=discrete)
        if not any(start):
            raise ValueError(
                "initial_state must not be the all-zero state: that state is the "
                "starting vertex; shift the state encoding (e.g. add 1 to a counter)"
            )
        first = graph.find_or_create_vertex(start)
        graph.starting_vertex().add_edge(first, 1.0)
        queue: deque[tuple[int, ...]] = deque([start])
        seen = {start}
        while queue:
            state = queue.popleft()
            src = graph.find_vertex(state)
            merged: dict[tuple[int, ...], list[Any]] = {}
            for item in fn(state, **kwargs):
                try:
                    next_state, weight = item
                except (TypeError, ValueError):
                    raise TypeError(
                        f"fn({state}) must return (next_state, weight) pairs, got {item!r}"
                    ) from None
                nxt = tuple(_as_state(next_state, graph.state_length))
                if nxt == state:
                    raise ValueError(
                        f"fn({state}) returned a transition to the same state; self-loops "
                        "are implicit (continuous: not needed; discrete: the remainder "
                        "1 - sum of out-probabilities)"
                    )
                if not any(nxt):
                    raise ValueError(
                        f"fn({state}) returned the all-zero state, which is reserved for "
                        "the starting vertex"
                    )
                constant, coefficients = _split_weight(weight)
                slot = merged.setdefault(nxt, [0.0, np.zeros(0)])
                slot[0] += constant
                if coefficients:
                    c = np.asarray(coefficients)
                    n = max(len(c), len(slot[1]))
                    slot[1] = np.pad(slot[1], (0, n - len(slot[1]))) + np.pad(c, (0, n - len(c)))
            for nxt, (constant, coefficients) in merged.items():
                dst = graph.find_or_create_vertex(nxt)
                graph._builder.add_edge(src.index, dst.index, constant, coefficients.tolist())
                if nxt not in seen:
                    seen.add(nxt)
                    queue.append(nxt)
        graph._changed()
        return graph

    def serialize(self) -> str:
        """The graph as JSON (schema: docs/pages/json_schema.md), cached until it changes."""
        if self._json is None:
            self._json = self._builder.serialize()
        return self._json

    @classmethod
    def from_json(cls, text: str | Mapping[str, Any]) -> Graph:
        """A graph from `serialize()`'s JSON (a string or an already-parsed dict)."""
        if isinstance(text, Mapping):
            text = json.dumps(text)
        if not isinstance(text, str):
            raise TypeError(f"from_json expects a JSON string or dict, got {type(text).__name__}")
        return cls._wrap(core().GraphBuilder.from_json(text))

    def copy(self) -> Graph:
        """An independent deep copy: same vertices, order, edges and weights."""
        return type(self).from_json(self.serialize())

    def clone(self) -> Graph:
        """The same as `copy()` (upstream phasic has both names)."""
        return self.copy()

    @classmethod
    def from_matrices(
        cls,
        ipv: Any,
        sim: Any,
        states: Any = None,
        *,
        discrete: bool = False,
    ) -> Graph:
        """A graph from an initial probability vector and a sub-intensity matrix.

        `sim` is S (continuous: rates off the diagonal, minus the total out-rate on it)
        or, with `discrete=True`, P - I for the sub-transition matrix P, the form
        `as_matrices()` returns. Row i becomes a vertex with state `states[i]`
        (default `(i + 1,)`: the all-zero state is the starting vertex), the starting
        vertex gets an edge of weight `ipv[i]` to each row with `ipv[i] > 0`, and what
        a row leaves below zero, `-(sim[i, i] + sum of its off-diagonal)`, becomes an
        edge into one absorbing vertex with state `(n + 1,)` (default states) or
        `(-1, ..., -1)`. If `ipv` sums to less than 1 the rest is mass at T = 0.
        """
        return graph_from_matrices(cls, ipv, sim, states, discrete)

    def as_matrices(self, theta: Any = None) -> MatrixRepresentation:
        """The graph as (ipv, sim, states, indices) over its transient vertices.

        Transient vertices are those other than the starting vertex with at least one
        out-edge, in vertex order. `ipv` holds the starting vertex's edge weights into
        them; `sim` the weights between them, with minus each vertex's total out-weight
        on the diagonal (S for continuous graphs, P - I for discrete ones). Weights are
        evaluated at `theta`. `indices` are 1-based vertex indices, as upstream's.
        """
        weights = self._edge_weights(self._theta(theta))
        transient = [i for i in range(1, len(weights)) if weights[i]]
        row = {vertex: r for r, vertex in enumerate(transient)}
        ipv = np.zeros(len(transient))
        sim = np.zeros((len(transient), len(transient)))
        for dst, w in weights[0]:
            if dst in row:  # an edge straight into an absorbing vertex is mass at T = 0
                ipv[row[dst]] += w
        for src in transient:
            r = row[src]
            for dst, w in weights[src]:
                sim[r, r] -= w
                if dst in row:
                    sim[r, row[dst]] += w
        indices = np.asarray(transient, dtype=np.int32)
        return MatrixRepresentation(ipv, sim, self.states()[indices], indices + 1)

    def _edge_weights(self, theta: np.ndarray) -> list[list[tuple[int, float]]]:
        """Each vertex's out-edges as (target, weight at theta); a negative weight is an error."""
        out = []
        for src in range(self.vertices_length()):
            edges = []
            for dst, constant, params, values in self._builder.out_edges(src):
                w = float(constant) + sum(float(c) * theta[p] for p, c in zip(params, values, strict=True))
                if not w >= 0.0:
                    raise ValueError(
                        f"edge {src} -> {dst} has weight {w} for theta {theta.tolist()}; "
                        "weights must be >= 0: check theta and the edge's coefficients"
                    )
                edges.append((int(dst), w))
            out.append(edges)
        return out

    def structure(self, memory_budget: int | None = None) -> Any:
        """The compiled C++ `Structure`, cached until the graph changes.

        `memory_budget` (bytes) bounds the elimination plan's memory; None uses
        PHASIC_STRUCTURE_MEMORY_BUDGET or 2 GiB. Beyond it, a ValueError names the
        estimated size and work and the budget. It applies when the structure is
        compiled; an already cached structure is returned as it is.
        """
        if self._structure is None:
            self._structure = self._builder.compile(memory_budget)
        return self._structure

    # -- distributions -------------------------------------------------------------

    def _theta(self, theta: Any) -> np.ndarray:
        """theta as a float64 vector of length param_length()."""
        p = self.param_length()
        if theta is None:
            if p > 0:
                raise ValueError(
                    f"this graph has {p} parameter(s); pass theta, a sequence of {p} floats"
                )
            return np.zeros(0, dtype=np.float64)
        arr = np.asarray(theta)
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"theta must be numeric, got dtype {arr.dtype}")
        arr = arr.astype(np.float64)
        if arr.ndim != 1 or arr.shape[0] != p:
            raise ValueError(
                f"theta must have shape ({p},) for this graph (param_length() = {p}), "
                f"got shape {arr.shape}"
            )
        return np.ascontiguousarray(arr)

    def _rewards(self, rewards: Any) -> np.ndarray | None:
        if rewards is None:
            return None
        arr = np.asarray(rewards)
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"rewards must be numeric, got dtype {arr.dtype}")
        arr = np.ascontiguousarray(arr, dtype=np.float64)
        v = self.vertices_length()
        if arr.shape != (v,):
            raise ValueError(
                f"rewards must have one entry per vertex, shape ({v},), got shape {arr.shape}"
            )
        return arr

    def moments(self, k: int, theta: Any = None, rewards: Any = None) -> np.ndarray:
        """The first `k` raw moments E[T^i] (or E[Y^i] with per-vertex rewards), i = 1..k."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise TypeError(f"k (the number of moments) must be an int, got {k!r}")
        if k <= 0:
            raise ValueError(f"k (the number of moments) must be >= 1, got {k}")
        return np.asarray(
            self.structure().moments(self._theta(theta), int(k), self._rewards(rewards))
        )

    def expectation(self, theta: Any = None, rewards: Any = None) -> float:
        """E[T] (or E[Y] with rewards)."""
        return float(self.moments(1, theta, rewards)[0])

    def variance(self, theta: Any = None, rewards: Any = None) -> float:
        """Var[T] (or Var[Y] with rewards)."""
        m = self.moments(2, theta, rewards)
        return float(m[1] - m[0] ** 2)

    def _times(self, t: Any, what: str) -> tuple[np.ndarray, tuple[int, ...]]:
        arr = np.asarray(t)
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"{what} must be numeric, got dtype {arr.dtype}")
        arr = arr.astype(np.float64)
        return np.ascontiguousarray(arr.reshape(-1)), arr.shape

    def pdf(self, t: Any, theta: Any = None) -> np.ndarray | float:
        """The density at time(s) `t` (continuous graphs only)."""
        if self.discrete:
            raise TypeError("pdf() is for continuous graphs; this graph is discrete: use pmf()")
        times, shape = self._times(t, "t")
        out = np.asarray(self.structure().pdf(self._theta(theta), times)).reshape(shape)
        return float(out) if out.ndim == 0 else out

    def pmf(self, k: Any, theta: Any = None) -> np.ndarray | float:
        """The probability mass at step(s) `k` (discrete graphs only)."""
        if not self.discrete:
            raise TypeError("pmf() is for discrete graphs; this graph is continuous: use pdf()")
        times, shape = self._times(k, "k")
        out = np.asarray(self.structure().pdf(self._theta(theta), times)).reshape(shape)
        return float(out) if out.ndim == 0 else out

    def cdf(self, t: Any, theta: Any = None) -> np.ndarray | float:
        """P(T <= t) at time(s) or step(s) `t`."""
        times, shape = self._times(t, "t")
        out = np.asarray(self.structure().cdf(self._theta(theta), times)).reshape(shape)
        return float(out) if out.ndim == 0 else out

    def expected_waiting_time(self, rewards: Any = None, *, theta: Any = None) -> np.ndarray:
        """Expected (rewarded) time to absorption from each vertex, one entry per vertex.

        Entry i is E[Y | start at vertex i], Y the time (with `rewards`, the reward
        accumulated) until absorption: ((-S)^-1 r) on the transient vertices, 0 on
        absorbing ones, and entry 0 (the starting vertex, which takes no time) is
        `expectation(theta, rewards)`. For a discrete graph it counts steps. It solves
        a dense system over the transient vertices, so it is meant for small graphs;
        `expectation` gives entry 0 for graphs of any size.
        """
        rep = self.as_matrices(theta)
        n = self.vertices_length()
        r = np.ones(n) if rewards is None else self._rewards(rewards)
        rows = rep.indices - 1
        try:
            solved = np.linalg.solve(-rep.sim, r[rows]) if rows.size else np.zeros(0)
        except np.linalg.LinAlgError:
            raise ValueError(
                "a transient vertex cannot reach an absorbing vertex for this theta (the "
                "sub-intensity matrix is singular); check the edges and theta"
            ) from None
        out = np.zeros(n)
        out[rows] = solved
        out[0] = float(rep.ipv @ solved)
        return out

    def pmf_discrete(self, k: Any, theta: Any = None) -> np.ndarray | float:
        """P(T = k) at whole step(s) `k` of a discrete graph (upstream's name for `pmf`)."""
        return self.pmf(self._steps(k, "pmf_discrete"), theta)

    def cdf_discrete(self, k: Any, theta: Any = None) -> np.ndarray | float:
        """P(T <= k) at whole step(s) `k` of a discrete graph."""
        return self.cdf(self._steps(k, "cdf_discrete"), theta)

    def _steps(self, k: Any, what: str) -> np.ndarray:
        """`k` checked as whole numbers of steps for a discrete graph."""
        if not self.discrete:
            raise TypeError(
                f"{what}() is for discrete graphs; this graph is continuous (use pdf() / "
                "cdf(), or build it with Graph(..., discrete=True))"
            )
        arr = np.asarray(k)
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"{what}() steps must be numeric, got dtype {arr.dtype}")
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ValueError(f"{what}() steps must be whole numbers, got {arr.tolist()}")
        return arr

    def __repr__(self) -> str:
        kind = "discrete" if self.discrete else "continuous"
        return (f"Graph({kind}, vertices={self.vertices_length()}, "
                f"edges={self.edges_length()}, params={self.param_length()})")

    # -- upstream compatibility: sampling and SVGD

    def sample(self, n: int, *, theta: Any = None, rewards: Any = None,
               seed: Any = None) -> np.ndarray:
        """`n` exact draws of the absorption time T (with `rewards`, of the reward
        accumulated until absorption), by simulating the chain (see `phasic.sampling`).

        theta: the parameters (default: the stored θ); seed: None (fresh entropy), an
        int or a numpy Generator. Discrete graphs give whole numbers of steps.
        """
        from .sampling import check_sample_count, check_seed, sample_absorption

        count, rng = check_sample_count(n), check_seed(seed)
        weights = self._edge_weights(self._theta(theta))
        return sample_absorption(weights, count, self.discrete, self._rewards(rewards), rng)

    def compute_trace(self, *args: Any, **kwargs: Any) -> None:
        """Upstream records an elimination trace here; we have none (our kernels work on
        the compiled structure), so this only checks that the graph compiles and
        returns None. Arguments are accepted and ignored."""
        self.structure()

    def svgd(self, observed_data: Any, **kwargs: Any) -> Any:
        """SVGD with upstream phasic's keywords (`theta_dim`, `prior`, `n_particles`,
        `n_iterations`, `learning_rate`, `bandwidth`, `seed`, ...), run by `phasic.svgd`.

        Returns an object with `.particles` (theta space), `.theta_mean`, `.theta_std`.
        See `phasic.upstream_svgd` for the mapping and what is not implemented.
        """
        from .upstream_svgd import graph_svgd

        return graph_svgd(self, observed_data, **kwargs)
