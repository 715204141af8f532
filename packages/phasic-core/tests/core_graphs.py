"""Seeded random graphs for the tests: cyclic or acyclic, continuous or discrete.

Vertex states are (1,), (2,), ... in creation order. The last one or two vertices are
absorbing; every transient vertex has an edge to a later vertex, so absorption is
reachable from everywhere. Edge weights mix constants and coefficient vectors over
several parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from phasic import Graph, _core


@dataclass
class RandomCase:
    graph: Graph
    theta: np.ndarray
    seed: int
    cyclic: bool
    discrete: bool


def random_graph(seed: int, *, cyclic: bool, discrete: bool = False,
                 n_states: int | None = None, n_params: int | None = None) -> RandomCase:
    """A random graph with 2-30 states and 1-4 parameters, and a theta for it."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 31)) if n_states is None else n_states
    p = int(rng.integers(1, 5)) if n_params is None else n_params
    n_abs = 1 if n < 4 or rng.random() < 0.5 else 2
    n_tr = n - n_abs
    theta = rng.uniform(0.5, 2.0, size=p)

    edges: dict[tuple[int, int], tuple[float, np.ndarray]] = {}

    def weight() -> tuple[float, np.ndarray]:
        if rng.random() < 0.4:
            return float(rng.uniform(0.2, 2.0)), np.zeros(p)
        c = rng.uniform(0.1, 1.5, size=p) * (rng.random(p) < 0.6)
        c[rng.integers(p)] += 0.3  # at least one positive coefficient
        return 0.0, c

    for i in range(n_tr):  # a forward edge from every transient state
        edges[(i, int(rng.integers(i + 1, n)))] = weight()
    for _ in range(int(rng.integers(0, 2 * n + 1))):
        i = int(rng.integers(0, n_tr))
        j = int(rng.integers(0, n))
        if i == j or (not cyclic and j < i) or (i, j) in edges:
            continue
        edges[(i, j)] = weight()
    # the last parameter must be used, so param_length == p
    edges[next(iter(edges))] = (0.0, rng.uniform(0.2, 1.5, size=p))

    if discrete:  # scale each vertex's out-probabilities to sum to u in [0.3, 0.95]
        totals = np.zeros(n)
        for (i, _), (c0, c) in edges.items():
            totals[i] += c0 + c @ theta
        target = rng.uniform(0.3, 0.95, size=n)
        edges = {(i, j): (c0 * target[i] / totals[i], c * target[i] / totals[i])
                 for (i, j), (c0, c) in edges.items()}

    g = Graph(1, discrete=discrete)
    vs = [g.find_or_create_vertex((k + 1,)) for k in range(n)]
    # initial distribution over a few transient states, sometimes with a defect
    k0 = int(rng.integers(1, min(3, n_tr) + 1))
    starts = rng.choice(n_tr, size=k0, replace=False)
    probs = rng.dirichlet(np.ones(k0)) * (0.9 if rng.random() < 0.25 else 1.0)
    for s, q in zip(starts, probs, strict=True):
        g.starting_vertex().add_edge(vs[int(s)], float(q))
    if probs.sum() < 1.0 - 1e-9:  # start weights are relative: the defect is an edge
        g.starting_vertex().add_edge(vs[n_tr], 1.0 - float(probs.sum()))
    for (i, j), (c0, c) in edges.items():
        if np.any(c != 0.0):
            if c0 != 0.0:  # a constant plus coefficients: express as coefficients only
                raise AssertionError("weights are either constant or coefficients")
            vs[i].add_edge(vs[j], c.tolist())
        else:
            vs[i].add_edge(vs[j], float(c0))
    return RandomCase(g, theta, seed, cyclic, discrete)


def with_defect(seed: int, *, cyclic: bool, discrete: bool) -> tuple[Graph, np.ndarray]:
    """`random_graph(seed, ...)` whose start edges also lead into an absorbing vertex (a
    defect), and its theta."""
    case = random_graph(seed, cyclic=cyclic, discrete=discrete)
    g = case.graph
    if all(e.to().edges() for e in g.starting_vertex().edges()):
        absorbing = [v for v in g.vertices()[1:] if not v.edges()]
        g.starting_vertex().add_edge(absorbing[0], 0.4)
    return g, case.theta


@dataclass
class ChordCycle:
    """Edges of a chord cycle: transient vertices 0..n-1, the absorbing vertex n.

    rate = coef * theta[0] on transient -> transient edges, the constant `coef` into
    absorption; the chain starts in vertex 0.
    """

    n: int
    src: np.ndarray
    dst: np.ndarray
    coef: np.ndarray
    absorbing: np.ndarray  # per edge: into the absorbing vertex

    def graph(self, discrete: bool = False) -> Graph:
        """The phasic graph (state (i + 1,) for vertex i); discrete: rates scaled to
        out-probabilities summing to 0.9 at theta[0] = 1."""
        scale = np.ones(self.n)
        if discrete:
            scale = 0.9 / np.bincount(self.src, weights=self.coef, minlength=self.n)
        g = Graph(1, discrete=discrete)
        vs = [g.find_or_create_vertex((k + 1,)) for k in range(self.n + 1)]
        g.starting_vertex().add_edge(vs[0], 1.0)
        for a, b, c, ab in zip(self.src, self.dst, self.coef, self.absorbing, strict=True):
            w = float(c * scale[a])
            vs[int(a)].add_edge(vs[int(b)], w if ab else [w])
        return g


def chord_cycle(n: int, degree: int = 6, seed: int = 0) -> ChordCycle:
    """A directed cycle over n transient vertices, each with degree - 1 random chords
    (distinct targets) and, for one vertex in 20 (at least vertex 0), an edge into
    absorption: one strongly connected component whose elimination fill is large."""
    rng = np.random.default_rng(seed)
    src, dst = [], []
    for i in range(n):
        targets = {(i + 1) % n}
        while len(targets) < min(degree, n - 1):
            j = int(rng.integers(n))
            if j != i:
                targets.add(j)
        src += [i] * len(targets)
        dst += sorted(targets)
    leaving = np.flatnonzero(rng.random(n) < 0.05)
    leaving = np.union1d(leaving, [0])
    absorbing = np.r_[np.zeros(len(src), dtype=bool), np.ones(len(leaving), dtype=bool)]
    src = np.r_[src, leaving]
    dst = np.r_[dst, np.full(len(leaving), n)]
    coef = rng.uniform(0.5, 2.0, size=len(src))
    return ChordCycle(n, src.astype(np.int64), dst.astype(np.int64), coef, absorbing)


def dense_builder(b: _core.GraphBuilder, theta: np.ndarray):
    """alpha, the transient sub-matrix (S or P), the exit vector, transient vertex ids."""
    V = b.vertices_length()
    transient = [v for v in range(1, V) if b.out_edges(v)]
    idx = {v: k for k, v in enumerate(transient)}
    n = len(transient)
    alpha = np.zeros(n)
    start = [(dst, w + np.dot(values, theta[params])) for dst, w, params, values in b.out_edges(0)]
    total = sum(w for _, w in start)  # start weights are relative
    for dst, w in start:
        if dst in idx:
            alpha[idx[dst]] += w / total
    M = np.zeros((n, n))
    exit_ = np.zeros(n)
    for v in transient:
        for dst, w, params, values in b.out_edges(v):
            rate = w + np.dot(values, theta[params])
            if dst in idx:
                M[idx[v], idx[dst]] += rate
            else:
                exit_[idx[v]] += rate
    if b.discrete:
        M[np.diag_indices(n)] = 1.0 - M.sum(axis=1) - exit_
    else:
        M[np.diag_indices(n)] = -(M.sum(axis=1) + exit_)
    return alpha, M, exit_, transient


def chain_builder(edges, *, discrete=False, params=1) -> _core.GraphBuilder:
    """A builder from (src, dst, weight, coefficients) edges; states [x], 0 the start."""
    b = _core.GraphBuilder(1, discrete)
    b.set_param_length(params)
    ids = {}
    for src, dst, w, c in edges:
        for x in (src, dst):
            if x not in ids:
                ids[x] = 0 if x == 0 else b.find_or_create_vertex([x])
        b.add_edge(ids[src], ids[dst], w, c)
    return b


def compiled_chain(edges, *, discrete=False, params=1):
    """chain_builder's graph, compiled."""
    return chain_builder(edges, discrete=discrete, params=params).compile()


def cyclic_graph() -> tuple[Graph, np.ndarray]:
    """Three transient states with a cycle, two parameters, two absorbing states."""
    g = Graph(1)
    a, b, c, d, e = (g.find_or_create_vertex([k]) for k in range(1, 6))
    g.starting_vertex().add_edge(a, 0.7)
    g.starting_vertex().add_edge(c, 0.3)
    a.add_edge(b, [1.0, 0.0])
    b.add_edge(a, [0.0, 0.5])
    b.add_edge(c, 1.5)
    c.add_edge(a, 0.4)
    c.add_edge(d, [0.0, 2.0])
    b.add_edge(e, 0.25)
    return g, np.array([1.3, 0.8])
