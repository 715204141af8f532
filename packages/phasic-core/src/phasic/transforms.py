"""Graph-level transforms: reward transformation, mass at zero reward, discretization.

`reward_transform` turns a graph and per-vertex rewards r into a graph whose time to
absorption is distributed as the accumulated reward Y = integral of r(X_t) dt
(continuous) or Y = sum of r over the visited states (discrete, whole-number r).

- Every transient reward positive, continuous: each vertex's out-edges (base and
  coefficients) are divided by its reward, so the result stays linear in theta.
- Discrete, reward k >= 2: a visit takes k steps, through a chain of k - 1 auxiliary
  vertices; the vertex's own remainder (its implicit self-loop) becomes an edge from
  the last chain vertex back to it, which is linear in theta too.
- Zero rewards: those vertices are eliminated (a Schur complement over them) at a
  numeric theta, since the rates after elimination are ratios of theta-linear
  weights. The result has constant weights. Paths through zero-reward vertices only
  into an absorbing vertex become start edges into it: the mass at Y = 0 (a defect).

`discretize` adds a "mutation" vertex to each transient vertex, as upstream phasic:
the discrete graph that counts Poisson events at a (state-dependent) rate.

States of the results: surviving vertices keep their states. The discrete results
(`reward_transform` of a discrete graph and `discretize`) append one entry to every
state: 0 for a vertex of the original graph, j >= 1 for the j-th auxiliary vertex of
the vertex whose state is the rest (e.g. (3, 1, 0) and (3, 1, 1) for state (3, 1)).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ._ext import core
from .vertices import _split_weight

if TYPE_CHECKING:
    from .graph import Graph

# An out-edge in the form the builder takes: (target, base weight, dense coefficients).
Row = list[tuple[int, float, list[float]]]

# Below this, a discrete vertex's remainder (1 - its out-probabilities) is rounding.
_REMAINDER_TOLERANCE = 1e-12


def checked_rewards(graph: Graph, rewards: Any, what: str) -> np.ndarray:
    """`rewards` as float64, one finite value >= 0 per vertex (whole numbers if discrete)."""
    if rewards is None:
        raise ValueError(f"{what} needs rewards: one value >= 0 per vertex "
                         f"(vertices_length() = {graph.vertices_length()})")
    if np.ndim(rewards) != 1:
        raise ValueError(f"{what}: rewards must be one vector with vertices_length() = "
                         f"{graph.vertices_length()} entries, got shape {np.shape(rewards)}")
    r = graph._rewards(rewards)
    if r is None:
        raise ValueError(f"{what}: rewards is empty; give vertices_length() = "
                         f"{graph.vertices_length()} values, one per vertex")
    bad = np.flatnonzero(~np.isfinite(r) | (r < 0))
    if bad.size:
        raise ValueError(f"{what}: rewards[{bad[0]}] is {r[bad[0]]}; rewards must be "
                         "finite and >= 0")
    if graph.discrete:
        frac = np.flatnonzero(r != np.round(r))
        if frac.size:
            raise ValueError(
                f"{what}: rewards[{frac[0]}] is {r[frac[0]]}, but a discrete graph's rewards "
                "must be whole numbers (a reward k makes a visit take k steps)")
    return r


def _transient(graph: Graph) -> list[int]:
    """Vertices other than the start with at least one out-edge, in index order."""
    b = graph._builder
    return [v for v in range(1, graph.vertices_length()) if len(b.out_edges(v))]


def _zero_theta_message(graph: Graph, zeros: list[int], what: str) -> str:
    p = graph.param_length()
    return (
        f"{what}: the rewards are 0 on transient vertices {zeros[:5]}"
        f"{' ...' if len(zeros) > 5 else ''}. Eliminating zero-reward vertices makes the "
        "rates non-linear in theta, so it is done at a numeric theta and none is given or "
        f"stored: pass theta= (a sequence of {p} floats) or call update_weights(theta) first"
    )


def _numeric_theta(graph: Graph, theta: Any, zeros: list[int], what: str) -> np.ndarray:
    """theta for an elimination: the argument, else the stored one, else a clear error."""
    if theta is not None or not zeros or graph.param_length() == 0 or graph._stored is not None:
        return graph._theta(theta)
    raise ValueError(_zero_theta_message(graph, zeros, what))


def eliminate_zero_rewards(graph: Graph, r: np.ndarray, theta: np.ndarray
                           ) -> tuple[list[int], list[dict[int, float]]]:
    """Remove the zero-reward transient vertices at `theta` (a Schur complement).

    Returns the kept vertices (0, then the others in index order) and each kept
    vertex's out-weights {target: weight}. From a zero-reward vertex z the chain
    leaves the zero-reward block into target t with probability X[z, t], where
    M X = B, M = (-S or I - P) over the block and B its weights out of the block;
    an edge u -> z of weight w becomes edges u -> t of weight w X[z, t]. A vertex's
    edge back to itself is dropped: a continuous self-loop changes nothing, and a
    discrete one is the row's implicit remainder.
    """
    weights = graph._edge_weights(theta)
    zeros = [v for v in _transient(graph) if r[v] == 0.0]
    zpos = {z: k for k, z in enumerate(zeros)}
    kept = [v for v in range(graph.vertices_length()) if v not in zpos]
    targets = sorted({d for z in zeros for d, _ in weights[z] if d not in zpos})
    tpos = {t: k for k, t in enumerate(targets)}
    m = np.zeros((len(zeros), len(zeros)))
    rhs = np.zeros((len(zeros), len(targets)))
    for z, k in zpos.items():
        for d, w in weights[z]:
            m[k, k] += w  # -S_zz (continuous) and 1 - P_zz (discrete) both = out-weight
            if d in zpos:
                m[k, zpos[d]] -= w
            else:
                rhs[k, tpos[d]] += w
    try:
        exits = np.linalg.solve(m, rhs) if zeros else rhs
    except np.linalg.LinAlgError:
        raise ValueError(
            f"the zero-reward vertices {zeros[:5]} include some that never leave them for "
            "a vertex with positive reward or an absorbing vertex at theta = "
            f"{theta.tolist()}; check the edges, theta and the rewards") from None
    rows = []
    for u in kept:
        out: dict[int, float] = {}
        via = np.zeros(len(targets))  # what u sends through the zero-reward block
        for d, w in weights[u]:
            if d in zpos:
                via += w * exits[zpos[d]]
            else:
                out[d] = out.get(d, 0.0) + w
        for k in np.flatnonzero(via > 0.0):
            out[targets[k]] = out.get(targets[k], 0.0) + float(via[k])
        if u:
            out.pop(u, None)
        rows.append(out)
    return kept, rows


def mass_at_zero(graph: Graph, rewards: Any, theta: Any) -> float:
    """P(Y = 0): the share of the start weight that reaches absorption collecting no reward."""
    r = checked_rewards(graph, rewards, "defect()")
    zeros = [v for v in _transient(graph) if r[v] == 0.0]
    at = _numeric_theta(graph, theta, zeros, "defect(rewards)")
    _, rows = eliminate_zero_rewards(graph, r, at)
    start = rows[0]
    # the checked sum of the start weights; elimination keeps it (start rows are split)
    total = graph._start_total(graph._edge_weights(at), at)
    absorbing = {v for v in range(1, graph.vertices_length())
                 if not len(graph._builder.out_edges(v))}
    return math.fsum(w for d, w in start.items() if d in absorbing) / total


def _parameterized_rows(graph: Graph) -> list[Row]:
    """Every vertex's out-edges as (target, base, dense coefficients)."""
    p = graph.param_length()
    rows = []
    for v in range(graph.vertices_length()):
        row = []
        for dst, base, params, values in graph._builder.out_edges(v):
            coefficients = [0.0] * p
            for q, c in zip(params, values, strict=True):
                coefficients[int(q)] += float(c)
            row.append((int(dst), float(base), coefficients))
        rows.append(row)
    return rows


def _scaled(row: Row, factor: float) -> Row:
    return [(d, base * factor, [c * factor for c in co]) for d, base, co in row]


def _discrete_chains(rows: list[Row], steps: list[int], p: int) -> list[Row]:
    """Make a visit to vertex v (v >= 1) take steps[v] steps; auxiliary rows appended.

    v keeps one edge (probability 1) to its first auxiliary vertex, and the last one
    takes v's out-edges plus v's remainder 1 - sum(out-probabilities) as an edge back
    to v (the remainder is v's implicit self-loop, a fresh visit of steps[v] steps).
    """
    out = [list(row) for row in rows]
    for v, k in enumerate(steps):
        if v == 0 or k < 2 or not rows[v]:
            continue
        first = len(out)
        for j in range(k - 1):
            out.append([(first + j + 1, 1.0, [0.0] * p)] if j < k - 2 else [])
        out[v] = [(first, 1.0, [0.0] * p)]
        last = out[-1]
        last.extend(rows[v])
        base = 1.0 - math.fsum(b for _, b, _ in rows[v])
        co = [-math.fsum(c[q] for _, _, c in rows[v]) for q in range(p)]
        if abs(base) > _REMAINDER_TOLERANCE or any(co):
            last.append((v, base, co))
    return out


def _build(graph: Graph, kept: list[int], rows: list[Row], p: int, discrete: bool,
           chain_owner: list[int]) -> Graph:
    """A Graph over `rows`: row i is vertex i; rows past `kept` are auxiliary vertices.

    Vertex i < len(kept) has the state of `kept[i]` in `graph`; auxiliary row
    len(kept) + a belongs to vertex chain_owner[a] (a new index) and numbers its
    auxiliary vertices 1, 2, ... in the state's extra last entry (discrete results).
    """
    from .graph import Graph

    length = graph.state_length() + int(discrete)
    builder = core().GraphBuilder(length, discrete)
    builder.set_param_length(p)
    states = [list(graph._builder.vertex_state(v)) for v in kept]
    count: dict[int, int] = {}
    for owner in chain_owner:
        count[owner] = count.get(owner, 0) + 1
        states.append(states[owner][: length - 1] + [count[owner]])
    for i in range(1, len(kept)):
        states[i] = states[i] + [0] * int(discrete)
    for i in range(1, len(states)):
        if builder.find_or_create_vertex(states[i]) != i:
            raise ValueError(f"state {states[i]} is repeated; the transformed graph needs "
                             "distinct states")
    for src, row in enumerate(rows):
        for dst, base, co in row:
            builder.add_edge(src, dst, base, co)
    return Graph._wrap(builder)


def _chain_owners(rows: list[Row], steps: list[int]) -> list[int]:
    """The vertex each auxiliary row belongs to, in the order `_discrete_chains` appends."""
    return [v for v, k in enumerate(steps) if v and k >= 2 and rows[v] for _ in range(k - 1)]


def transform_rewards(graph: Graph, rewards: Any, theta: Any, validate_rewards: bool,
                      what: str = "reward_transform") -> Graph:
    """See `Transforms.reward_transform`."""
    r = checked_rewards(graph, rewards, what)
    zeros = [v for v in _transient(graph) if r[v] == 0.0]
    if zeros:
        at = _numeric_theta(graph, theta, zeros, what)
        kept, weights = eliminate_zero_rewards(graph, r, at)
        index = {v: i for i, v in enumerate(kept)}
        rows: list[Row] = [[(index[d], w, []) for d, w in out.items()] for out in weights]
        p = 0
        if validate_rewards:
            _warn_zero_mass(graph, rows, at)
    else:
        kept = list(range(graph.vertices_length()))
        rows, p = _parameterized_rows(graph), graph.param_length()
    if graph.discrete:
        steps = [int(r[v]) for v in kept]
        owners = _chain_owners(rows, steps)
        rows = _discrete_chains(rows, steps, p)
    else:
        owners = []
        rows = [rows[0]] + [_scaled(row, 1.0 / r[v]) if row else row
                            for v, row in zip(kept[1:], rows[1:], strict=True)]
    result = _build(graph, kept, rows, p, graph.discrete, owners)
    if p:
        stored = graph._stored if theta is None else graph._checked_theta(theta)
        result._stored = None if stored is None else stored.copy()
    return result


def _warn_zero_mass(graph: Graph, rows: list[Row], theta: np.ndarray) -> None:
    """A UserWarning when zero rewards add mass at Y = 0 beyond the graph's own defect."""
    before = graph.defect(theta=theta)  # also says so if the start has no out-weight
    total = math.fsum(w for _, w, _ in rows[0])
    at_zero = math.fsum(w for d, w, _ in rows[0] if not rows[d]) / total
    if at_zero > before + 1e-15:
        warnings.warn(
            f"some paths collect no reward: P(Y = 0) = {at_zero:.6g} (the graph's own mass at "
            f"T = 0 is {before:.6g}). The transformed graph keeps it as start edges into an "
            "absorbing vertex, read it with defect(); its pdf covers Y > 0 only. Pass "
            "validate_rewards=False to silence this warning.",
            UserWarning, stacklevel=4)


def _mutation_rate(rate: Any, state: np.ndarray, theta: np.ndarray, kwargs: dict[str, Any]
                   ) -> float:
    """The rate for one state: a constant, or rate(state, **kwargs) as a float or c · theta."""
    value = rate(state.copy(), **kwargs) if callable(rate) else rate
    try:
        base, co = _split_weight(value)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"discretize: the rate for state {state.tolist()} is {value!r}: {exc}"
                        ) from None
    if len(co) > theta.shape[0]:
        raise ValueError(f"discretize: the rate for state {state.tolist()} has {len(co)} "
                         f"coefficients but the graph has {theta.shape[0]} parameters")
    mu = base + float(np.dot(co, theta[: len(co)]))
    if not (math.isfinite(mu) and mu >= 0.0):
        raise ValueError(f"discretize: the rate for state {state.tolist()} is {mu}; rates "
                         "must be finite and >= 0")
    return mu


def discretized(graph: Graph, rate: float | Callable[..., Any], theta: Any,
                kwargs: dict[str, Any]) -> Graph:
    """See `Transforms.discretize`."""
    if graph.discrete:
        raise TypeError("discretize() turns a continuous graph into a discrete one; this "
                        "graph is already discrete")
    if not callable(rate):
        if isinstance(rate, (bool, np.bool_)) or not isinstance(
                rate, (int, float, np.integer, np.floating)):
            raise TypeError(f"discretize: rate must be a number or a callable of the state, "
                            f"got {type(rate).__name__}")
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"discretize: rate must be finite and > 0, got {rate}")
    at = graph._theta(theta)
    weights = graph._edge_weights(at)
    n = graph.vertices_length()
    total = graph._start_total(weights, theta)
    rows: list[Row] = [[(d, w / total, []) for d, w in weights[0]]] + [[] for _ in range(1, n)]
    owners = []
    for v in _transient(graph):
        mu = _mutation_rate(rate, np.asarray(graph._builder.vertex_state(v)), at, kwargs)
        leave = math.fsum(w for _, w in weights[v]) + mu
        if not leave > 0.0:
            raise ValueError(f"discretize: vertex {v} has out-weight 0 and mutation rate 0 at "
                             f"theta = {at.tolist()}; it would never be left")
        rows[v] = [(d, w / leave, []) for d, w in weights[v]]
        if mu > 0.0:
            rows[v].append((n + len(owners), mu / leave, []))
            owners.append(v)
    rows += [[(v, 1.0, [])] for v in owners]
    result = _build(graph, list(range(n)), rows, 0, True, owners)
    result.rewards = np.zeros(result.vertices_length(), dtype=np.int64)
    result.rewards[n:] = 1
    return result


class Transforms:
    """The transforms as `Graph` methods (a base class of `Graph`)."""

    def reward_transform(self: Graph, rewards: Any, *, theta: Any = None,
                         validate_rewards: bool = True) -> Graph:
        """A new graph whose absorption time is distributed as the accumulated reward Y.

        Y = integral of r(X_t) dt (continuous) or the sum of r over the visited states
        (discrete; whole-number rewards, a reward k makes a visit take k steps through
        k - 1 auxiliary vertices). `rewards` has one value >= 0 per vertex (index 0,
        the starting vertex, and absorbing vertices are not used).

        With every transient reward positive the result keeps theta: it is valid for
        any theta later (`theta`, if given, is stored on it). Zero-reward vertices are
        eliminated at a numeric theta (`theta=` or the stored one; a ValueError if
        there is neither), because the rates after elimination are not linear in
        theta: the result then has constant weights for that theta, and the mass
        that reaches absorption through zero-reward vertices only is a start edge into
        an absorbing vertex (its `defect()`). That case gives a UserWarning unless
        `validate_rewards=False`. Surviving vertices keep their states; discrete
        results append an entry to every state (0, or j for the j-th auxiliary vertex).
        """
        return transform_rewards(self, rewards, theta, bool(validate_rewards))

    def reward_transform_discrete(self: Graph, rewards: Any, *, theta: Any = None) -> Graph:
        """`reward_transform` for a discrete graph (upstream's name); a TypeError otherwise."""
        if not self.discrete:
            raise TypeError("reward_transform_discrete() is for discrete graphs; this graph "
                            "is continuous: use reward_transform()")
        return transform_rewards(self, rewards, theta, True, "reward_transform_discrete")

    def discretize(self: Graph, rate: float | Callable[..., Any], skip_existing: bool = False, *,
                   theta: Any = None, **kwargs: Any) -> Graph:
        """A discrete graph that counts events at `rate` per unit time (upstream's discretize).

        Each transient vertex v gets an auxiliary "mutation" vertex: v moves to it with
        probability mu / (out-rate + mu) and it returns to v with probability 1, where
        mu is `rate` or `rate(state, **kwargs)` (a float, or coefficients c giving
        c · theta). Every row is normalized, so the result is the embedded jump chain
        with events; its `rewards` attribute is 1 on the auxiliary vertices and 0
        elsewhere, and the reward collected is the number of events K: given the path,
        K is Poisson with mean the integral of mu(X_t) dt. Weights are evaluated at `theta` (default:
        the stored theta), so the result has constant weights. States get an extra
        last entry: 0 for the original vertices, 1 for their auxiliary vertices.
        `skip_existing` is accepted for upstream compatibility: the input is
        continuous, so it has no auxiliary vertices to skip.
        """
        if not isinstance(skip_existing, (bool, np.bool_)):
            raise TypeError(f"skip_existing must be a bool, got {skip_existing!r}")
        return discretized(self, rate, theta, kwargs)
