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
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ._ext import core
from .distributions import Distributions
from .matrices import MatrixRepresentation, graph_from_matrices
from .serialized import from_upstream, to_upstream
from .states import StatesAtTime
from .transforms import Transforms
from .vertices import Vertex, Weight, _as_state, _split_weight


def _no_callback_arguments(ipv: Any, kwargs: dict[str, Any], what: str) -> None:
    """ipv and extra keyword arguments belong to Graph(callback, ...) only."""
    if ipv is not None or kwargs:
        given = ["ipv"] * (ipv is not None) + sorted(kwargs)
        raise ValueError(
            f"Graph() got {', '.join(given)} with {what}; ipv and extra keyword "
            "arguments are only for Graph(callback, ipv, **kwargs)"
        )


class Graph(Transforms, Distributions, StatesAtTime):
    """A phase-type distribution described as a graph of states.

    `Graph(state_length, discrete=False)` makes an empty graph holding only the
    starting vertex (index 0, state all zeros). Add vertices with `find_or_create_vertex`
    and edges with `Vertex.add_edge`, or build the whole state space with
    `Graph.from_callback`.
    """

    def __init__(
        self,
        arg: int | Callable[..., Any] | Graph,
        ipv: Any = None,
        *,
        discrete: bool | None = None,
        **kwargs: Any,
    ) -> None:
        """An empty graph, a graph built from a callback, or a copy of a graph.

        - `Graph(state_length, discrete=False)`: only the starting vertex.
        - `Graph(callback, ipv=None, discrete=False, **kwargs)`: the state space the
          callback generates (see `phasic.callbacks`); `kwargs` go to every call of it.
        - `Graph(other)`: an independent copy of `other` (as `other.copy()`).
        """
        if discrete is not None and not isinstance(discrete, (bool, np.bool_)):
            raise TypeError(f"discrete must be a bool, got {discrete!r}")
        if isinstance(arg, Graph):
            _no_callback_arguments(ipv, kwargs, "a Graph to copy")
            if discrete is not None and bool(discrete) != arg.discrete:
                raise ValueError("Graph(other) copies other, a "
                                 f"{'discrete' if arg.discrete else 'continuous'} graph; "
                                 "do not pass a different discrete=")
            builder = arg.copy()._builder
            if arg._stored is not None:
                self._stored = arg._stored.copy()
        elif callable(arg):
            from .callbacks import build  # callbacks imports this module

            builder = build(arg, ipv, bool(discrete), kwargs)
        elif isinstance(arg, bool) or not isinstance(arg, (int, np.integer)):
            raise TypeError(
                "Graph(): state_length must be an int (or pass a callback function or a "
                f"Graph to copy), got {arg!r}"
            )
        else:
            _no_callback_arguments(ipv, kwargs, "a state length")
            if arg < 0:
                raise ValueError(f"state_length must be >= 0, got {arg}")
            builder = core().GraphBuilder(int(arg), bool(discrete))
        self._builder = builder
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

    def state_length(self) -> int:
        """Length of every state vector."""
        return int(self._builder.state_length)

    @property
    def discrete(self) -> bool:
        """True for a discrete-time chain, False for continuous time."""
        return bool(self._builder.discrete)

    @property
    def is_discrete(self) -> bool:
        """The same as `discrete` (upstream phasic's name)."""
        return self.discrete

    def starting_vertex(self) -> Vertex:
        """The starting vertex (index 0); its out-edges are the initial distribution."""
        return Vertex(self, 0)

    def find_or_create_vertex(self, state: Iterable[int]) -> Vertex:
        """The vertex with this state, created if absent.

        The starting vertex is not found by its state: an all-zero state here is an
        ordinary vertex (often the absorbing "nothing left" state).
        """
        values = _as_state(state, self.state_length())
        before = self._builder.vertices_length()
        index = self._builder.find_or_create_vertex(values)
        if self._builder.vertices_length() != before:
            self._changed()
        return Vertex(self, index)

    def find_vertex(self, state: Iterable[int]) -> Vertex | None:
        """The vertex with this state, or None if there is none (never the starting vertex)."""
        index = self._builder.find_vertex(_as_state(state, self.state_length()))
        return None if index < 0 else Vertex(self, index)

    def vertex_exists(self, state: Iterable[int]) -> bool:
        """True if a vertex other than the starting vertex has this state."""
        return self.find_vertex(state) is not None

    def create_vertex(self, state: Iterable[int]) -> Vertex:
        """A new vertex with this state; a ValueError if the state already has one.

        States identify vertices, so a second vertex with the same state cannot exist;
        `find_or_create_vertex` returns the existing one instead.
        """
        values = _as_state(state, self.state_length())
        existing = self._builder.find_vertex(values)
        if existing >= 0:
            raise ValueError(
                f"state {tuple(values)} already belongs to vertex {existing}; states identify "
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
        out = np.zeros((n, self.state_length()), dtype=np.int32)
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
        constant, coefficients = _split_weight(weight)
        self._add_edge_parts(src, to, constant, coefficients)

    def _add_edge_parts(self, src: int, to: Vertex | int, constant: float,
                        coefficients: list[float]) -> None:
        """Add the edge src -> to with weight `constant + coefficients · theta`."""
        if isinstance(to, Vertex):
            if to._graph is not self:
                raise ValueError("cannot add an edge to a vertex of another graph")
            dst = to._index
        elif isinstance(to, (int, np.integer)) and not isinstance(to, bool):
            dst = int(to)
        else:
            raise TypeError(f"an edge target must be a Vertex, got {type(to).__name__}")
        self._builder.add_edge(src, dst, constant, coefficients)
        self._changed()

    # -- construction ----------------------------------------------------------------

    @classmethod
    def from_callback(
        cls,
        fn: Callable[..., Any],
        initial_state: Sequence[int] | Sequence[Any] | None,
        *,
        discrete: bool = False,
        batched: bool = False,
        batch_size: int | None = None,
        **kwargs: Any,
    ) -> Graph:
        """The graph `fn` generates from `initial_state`: `Graph(fn, ipv=initial_state)`.

        `fn(state, **kwargs)` receives a state (a new numpy int32 array) and returns its
        transitions `[[next_state, weight_or_coefficients], ...]`; an empty list makes
        the state absorbing. `phasic.callbacks` describes every form. Transitions from
        one state to the same next state are summed.

        `batched=True`: `fn(states, **kwargs)` receives up to `batch_size` (default
        4096) states at once, one per row of a 2-d int32 array, and returns
        `(rows, next_states, weights)` arrays (`phasic.batched_callbacks`); the graph
        is the one the per-state form builds, vertex for vertex.
        """
        if not callable(fn):  # Graph(3, ...) would take 3 for a state length
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        if not isinstance(batched, (bool, np.bool_)):
            raise TypeError(f"batched must be a bool, got {batched!r}")
        if not batched:
            if batch_size is not None:
                raise ValueError("batch_size is for batched callbacks: pass batched=True "
                                 "(fn then receives many states at once) or drop batch_size")
            return cls(fn, initial_state, discrete=discrete, **kwargs)
        from . import batched_callbacks
        from .callbacks import _initial_transitions

        if discrete is not None and not isinstance(discrete, (bool, np.bool_)):
            raise TypeError(f"discrete must be a bool, got {discrete!r}")
        size = batched_callbacks.check_batch_size(
            batched_callbacks.DEFAULT_BATCH_SIZE if batch_size is None else batch_size)
        if initial_state is None and getattr(fn, "_phasic_initial", None) is None:
            raise ValueError("a batched callback needs initial_state (a starting state such "
                             "as [2, 0], or [[state, weight], ...]) or the "
                             "@phasic.callback(ipv) decorator")
        initial = _initial_transitions(fn, initial_state, kwargs)
        builder = batched_callbacks.build_batched(fn, initial, bool(discrete), size, kwargs)
        return cls._wrap(builder)

    def to_json(self) -> str:
        """The graph as JSON (schema: docs/pages/json_schema.md), cached until it changes."""
        if self._json is None:
            self._json = self._builder.serialize()
        return self._json

    def serialize(self, theta_dim: int | None = None) -> dict[str, Any]:
        """The graph as upstream phasic's dict of numpy arrays (see `phasic.serialized`).

        Every FFI function and `Graph.from_serialized` read it back. An edge of weight
        base + c · theta becomes two rows of one (from, to) pair, a `param_edges` row
        for c and a constant row for the base (upstream adds parallel edges, so it means
        the same there). `theta_dim` sets `param_length` (>= this graph's). The dict
        also carries `is_discrete` and `edge_order`, which upstream ignores. Our JSON
        text is `to_json()`.
        """
        return to_upstream(json.loads(self.to_json()), theta_dim)

    @classmethod
    def from_serialized(cls, data: Mapping[str, Any]) -> Graph:
        """A graph from upstream phasic's serialize() dict (or ours, see `serialize`).

        Row i of `states` is vertex i, row 0 the starting vertex. Parallel rows of one
        (from, to) pair become one edge with the sum of their weights. Without an
        `is_discrete` key the graph is continuous. Bad input raises a ValueError or
        TypeError naming the key and row.
        """
        return cls.from_json(from_upstream(data))

    @classmethod
    def from_json(cls, text: str | Mapping[str, Any]) -> Graph:
        """A graph from `to_json()`'s JSON (a string or an already-parsed dict)."""
        if isinstance(text, Mapping):
            text = json.dumps(text)
        if not isinstance(text, str):
            raise TypeError(f"from_json expects a JSON string or dict, got {type(text).__name__}")
        return cls._wrap(core().GraphBuilder.from_json(text))

    def copy(self) -> Graph:
        """An independent deep copy: same vertices, order, edges, weights and stored theta."""
        twin = type(self).from_json(self.to_json())
        if self._stored is not None:
            twin._stored = self._stored.copy()
        return twin

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
        (default `(i,)`, as upstream), the starting vertex gets an edge of weight
        `ipv[i]` to each row with `ipv[i] > 0`, and what a row leaves below zero,
        `-(sim[i, i] + sum of its off-diagonal)`, becomes an edge into one absorbing
        vertex with state `(n,)` (default states) or all zeros (as upstream; (-1, ..., -1)
        if a row has the all-zero state). If `ipv` sums to less than 1, the rest becomes a start edge into
        the absorbing vertex: mass at T = 0 (start weights are relative).
        """
        return graph_from_matrices(cls, ipv, sim, states, discrete)

    def as_matrices(self, *, theta: Any = None) -> MatrixRepresentation:
        """The graph as (ipv, sim, states, indices) over its transient vertices.

        Transient vertices are those other than the starting vertex with at least one
        out-edge, in vertex order. `ipv` is the initial distribution over them: each
        start edge's weight divided by the sum of all start weights (a start edge into
        an absorbing vertex is mass at T = 0, so `ipv` then sums below 1); `sim` the
        weights between them, with minus each vertex's total out-weight on the diagonal
        (S for continuous graphs, P - I for discrete ones). Weights are evaluated at
        `theta` (default: the stored theta). `indices` are 1-based vertex indices, as
        upstream's.
        """
        weights = self._edge_weights(self._theta(theta))
        transient = [i for i in range(1, len(weights)) if weights[i]]
        row = {vertex: r for r, vertex in enumerate(transient)}
        ipv = np.zeros(len(transient))
        sim = np.zeros((len(transient), len(transient)))
        start_total = self._start_total(weights, theta)
        for dst, w in weights[0]:
            if dst in row:  # an edge straight into an absorbing vertex is mass at T = 0
                ipv[row[dst]] += w / start_total
        for src in transient:
            r = row[src]
            for dst, w in weights[src]:
                sim[r, r] -= w
                if dst in row:
                    sim[r, row[dst]] += w
        indices = np.asarray(transient, dtype=np.int32)
        return MatrixRepresentation(ipv, sim, self.states()[indices], indices + 1)

    def _start_total(self, weights: list[list[tuple[int, float]]], theta: Any) -> float:
        """The sum of the start weights (they are relative), checked to be finite and > 0."""
        if not weights[0]:
            raise ValueError(
                "the starting vertex (vertex 0) has no out-edges, so the graph has no initial "
                "distribution; add an edge from the starting vertex to the first state"
            )
        total = math.fsum(w for _, w in weights[0])
        if not (total > 0.0 and math.isfinite(total)):
            raise ValueError(
                f"the starting vertex's out-edge weights sum to {total} at theta = "
                f"{self._theta(theta).tolist()}; the initial distribution is each start weight "
                "divided by their sum, so the sum must be finite and > 0: choose theta (or the "
                "start edges' weights and coefficients) so that at least one start edge has a "
                "positive weight"
            )
        return total

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

    def normalize(self) -> list[float]:
        """Scale every vertex's out-weights to sum to 1; return the factors used.

        Entry i is 1 / (vertex i's total out-weight), or 1.0 for a vertex without
        out-weight (nothing is scaled there). A continuous graph becomes its embedded
        jump chain. Only graphs of constant edges can be normalized: an edge with
        coefficients is a ValueError.
        """
        n = self.vertices_length()
        rows = [self._builder.out_edges(i) for i in range(n)]
        for src, edges in enumerate(rows):
            for dst, w, params, _ in edges:
                if len(params):
                    raise ValueError(
                        f"normalize() scales constant weights; edge {src} -> {dst} has "
                        "coefficients (its weight depends on theta)"
                    )
                if not w >= 0.0:
                    raise ValueError(f"normalize() needs weights >= 0; edge {src} -> {dst} "
                                     f"has weight {w}")
        builder = core().GraphBuilder(self.state_length(), self.discrete)
        builder.set_param_length(self.param_length())
        for i in range(1, n):  # the same vertices in the same order
            builder.find_or_create_vertex(self._builder.vertex_state(i))
        factors = []
        for src, edges in enumerate(rows):
            total = sum(float(w) for _, w, _, _ in edges)
            factor = 1.0 / total if total > 0.0 else 1.0
            factors.append(factor)
            for dst, w, _, _ in edges:
                builder.add_edge(src, int(dst), float(w) * factor, [])
        self._builder = builder
        self._changed()
        return factors

    def __repr__(self) -> str:
        kind = "discrete" if self.discrete else "continuous"
        return (f"Graph({kind}, vertices={self.vertices_length()}, "
                f"edges={self.edges_length()}, params={self.param_length()})")

    # -- upstream compatibility: sampling and SVGD

    def sample(self, n: int, *, theta: Any = None, rewards: Any = None,
               seed: Any = None, validate_rewards: bool = True) -> np.ndarray:
        """`n` exact draws of the absorption time T (with `rewards` (V,), of the reward
        accumulated until absorption; with rewards (R, V), an (n, R) array of the R
        totals of each path), by simulating the chain (see `phasic.sampling`).

        theta: the parameters (default: the stored θ); seed: None (fresh entropy), an
        int or a numpy Generator. Discrete graphs give whole numbers of steps.
        validate_rewards: upstream's flag; rewards are always checked here.
        """
        from .sampling import sample_graph

        return sample_graph(self, n, theta, rewards, seed, validate_rewards)

    def mutation_pmf(self, mutation_rate: float, rewards: Any = None, *, kmax: int,
                     theta: Any = None) -> np.ndarray:
        """P(K = k), k = 0..kmax, for K | Y ~ Poisson(mutation_rate · Y): the number of
        mutations when they fall at `mutation_rate` per unit of reward (see
        `phasic.mutations`). rewards: (V,) or (R, V) rows (None: the time itself),
        giving shape (kmax + 1,) or (R, kmax + 1). Exact per k, not renormalized.
        """
        from .mutations import graph_mutation_pmf

        return graph_mutation_pmf(self, mutation_rate, rewards, kmax, theta)

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

    def plot(self, *args: Any, **kwargs: Any) -> Any:
        """The graph drawn with Graphviz: a `graphviz.Digraph` that renders in a notebook
        and to SVG/PNG. States label the vertices, weights (or their formulas) the edges;
        keywords as upstream's (see `phasic.plotting.plot`)."""
        from .plotting import plot

        return plot(self, *args, **kwargs)
