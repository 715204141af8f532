"""Exact lumping for the time to absorption (lumping.hpp), against independent values.

The densities run on the coarsest partition of the transient vertices in which every
vertex of a block has the same rates (as coefficient vectors, so for every theta) into
each other block and into absorption. The lumped chain's absorption time has exactly
the original's distribution, so each check here compares three things: the density
with lumping, without it (`_core.set_lumping(False)`), and an independent value (the
exact hypoexponential density of Kingman's T_MRCA, or the dense-matrix formulas of
core_reference). Tolerances are the documented bounds: f within 1e-10 relative (the
uniformized sweep's truncation), d log f within 2e-10 of its scale. Errors must read
the same with and without lumping: they name the graph's own edges and vertices.
"""

from __future__ import annotations

import core_reference as ref
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from core_graphs import chain_builder, random_graph

import phasic
from phasic import Graph, _core, models
from phasic.reference import kingman_tmrca

jax.config.update("jax_enable_x64", True)

F_REL, DLOG_REL = 1e-10, 2e-10


def unlumped(fn):
    try:
        _core.set_lumping(False)
        return fn()
    finally:
        _core.set_lumping(True)


def log_pdf_and_grad(text: str, theta: np.ndarray, times: np.ndarray):
    th, t = jnp.asarray(theta), jnp.asarray(times)
    logf = np.asarray(phasic.compute_log_pmf_ffi(text, th, t))
    dlogf = np.asarray(jax.jacfwd(lambda x: phasic.compute_log_pmf_ffi(text, x, t))(th))
    return logf, dlogf


def close(a: np.ndarray, b: np.ndarray, rel: float) -> None:
    np.testing.assert_allclose(a, b, rtol=rel, atol=0)


def scaled_close(a: np.ndarray, b: np.ndarray, rel: float) -> None:
    """d log f crosses 0: compare on the scale max(|b|, 1)."""
    assert np.max(np.abs(a - b) / np.maximum(np.abs(b), 1.0)) <= rel


def chain(edges, *, discrete: bool = False, params: int = 1):
    """(JSON text, compiled structure) of core_graphs.chain_builder's graph."""
    b = chain_builder(edges, discrete=discrete, params=params)
    return b.serialize(), b.compile()


def island_graph(n: int) -> Graph:
    """Two symmetric islands, n lineages starting in either with probability 1/2.

    State (a, b): lineages in each island. Coalescence in an island with k lineages at
    C(k, 2) theta[0], each lineage migrates at theta[1]. Cyclic (lineages move back and
    forth); (a, b) and (b, a) lump by symmetry.
    """
    g = Graph(2)
    start = g.starting_vertex()
    start.add_edge(g.find_or_create_vertex([n, 0]), 0.5)
    start.add_edge(g.find_or_create_vertex([0, n]), 0.5)
    todo = [(n, 0), (0, n)]
    seen = set(todo)
    while todo:
        a, b = todo.pop()
        v = g.find_or_create_vertex([a, b])
        moves = []
        if a >= 2:
            moves.append(((a - 1, b), [a * (a - 1) / 2, 0.0]))
        if b >= 2:
            moves.append(((a, b - 1), [b * (b - 1) / 2, 0.0]))
        if a >= 1:
            moves.append(((a - 1, b + 1), [0.0, float(a)]))
        if b >= 1:
            moves.append(((a + 1, b - 1), [0.0, float(b)]))
        for (x, y), coef in moves:
            target = (1, 0) if x + y == 1 else (x, y)  # one lineage left: absorbed
            v.add_edge(g.find_or_create_vertex(list(target)), coef)
            if x + y > 1 and target not in seen:
                seen.add(target)
                todo.append(target)
    return g


# ---------------------------------------------------------------- what lumps


@pytest.mark.parametrize("n", [5, 10, 20])
def test_block_counting_coalescent_lumps_to_its_lineage_counts(n: int) -> None:
    s = models.kingman(n).structure()
    assert s.lumped_length == n - 1
    assert s.transient_length > s.lumped_length
    assert unlumped(lambda: s.lumped_length) == s.transient_length


def test_symmetric_islands_lump_by_symmetry() -> None:
    s = island_graph(4).structure()
    assert not s.acyclic
    # 5 + 4 + 3 states with 4, 3, 2 lineages; (a, b) and (b, a) are one block: 3 + 2 + 2
    assert s.transient_length == 12
    assert s.lumped_length == 7


def test_graphs_without_symmetry_keep_their_vertices() -> None:
    for seed in range(6):
        for cyclic in (False, True):
            s = random_graph(seed, cyclic=cyclic).graph.structure()
            assert s.lumped_length == s.transient_length


def test_rates_equal_at_one_theta_only_do_not_lump() -> None:
    # Vertices 3 and 4 absorb at theta[0] and theta[1]: equal only where theta[0] =
    # theta[1], so they stay apart (1 and 2, which lead to them, too).
    text, s = chain([(0, 1, 0.5, []), (0, 2, 0.5, []), (1, 3, 1.0, []), (2, 4, 1.0, []),
                     (3, 9, 0.0, [1.0, 0.0]), (4, 9, 0.0, [0.0, 1.0])], params=2)
    assert s.lumped_length == s.transient_length == 4
    theta, t = np.array([0.7, 2.5]), np.linspace(0.1, 6.0, 25)
    close(s.pdf(theta, t), ref.pdf(text, theta, t), F_REL)


def test_rates_equal_only_up_to_rounding_stay_apart() -> None:
    # 1 reaches the block {3, 4} at 0.1 + 0.2 (0.30000000000000004 in doubles), 2 at 0.3:
    # not bit-equal, so 1 and 2 are not merged (a lumping is never taken on rounding).
    edges = [(0, 1, 0.5, []), (0, 2, 0.5, []), (1, 3, 0.1, []), (1, 4, 0.2, []),
             (2, 3, 0.3, []), (3, 9, 1.5, []), (4, 9, 1.5, [])]
    text, s = chain(edges)
    assert s.transient_length == 4
    assert s.lumped_length == 3
    t = np.linspace(0.05, 8.0, 30)
    close(s.pdf([1.0], t), ref.pdf(text, [1.0], t), F_REL)
    close(s.pdf([1.0], t), unlumped(lambda: s.pdf([1.0], t)), 1e-13)


# ---------------------------------------------------------------- exact values


@pytest.mark.parametrize("n", [10, 20])
def test_kingman_density_and_gradient_are_exact_lumped(n: int) -> None:
    text = models.kingman(n).to_json()
    rng = np.random.default_rng(n)
    k = np.arange(2, n + 1)
    t = rng.exponential(2.0 / (k * (k - 1)), size=(150, k.size)).sum(axis=1)
    theta = 1.3
    exact = kingman_tmrca(n, t, theta)
    f_exact = np.array([float(x) for x in exact.pdf])
    logf, dlogf = log_pdf_and_grad(text, np.array([theta]), t)
    close(np.exp(logf), f_exact, F_REL)
    # f_theta(t) = theta f_1(theta t), so d log f / d theta = (1 + t f_theta'(t) / f_theta(t))
    # / theta, with f_theta' the exact slope in t
    slope = np.array([float(x) for x in exact.slope])
    scaled_close(dlogf[:, 0], (1 + t * slope / f_exact) / theta, DLOG_REL)
    off = unlumped(lambda: log_pdf_and_grad(text, np.array([theta]), t))
    close(logf, off[0], 1e-11)
    scaled_close(dlogf, off[1], 4e-10)


def test_cyclic_islands_match_the_dense_formulas() -> None:
    g = island_graph(4)
    text = g.to_json()
    theta = np.array([1.0, 0.35])
    t = np.linspace(0.05, 10.0, 40)
    s = g.structure()
    close(s.pdf(theta, t), ref.pdf(text, theta, t), F_REL)
    close(s.cdf(theta, t), ref.cdf(text, theta, t), F_REL)
    logf, dlogf = log_pdf_and_grad(text, theta, t)
    fd = ref.finite_difference(lambda th: np.log(ref.pdf(text, th, t)), theta)
    scaled_close(dlogf, fd, 1e-6)  # finite differences: h = 1e-5, second order
    off = unlumped(lambda: log_pdf_and_grad(text, theta, t))
    close(logf, off[0], 1e-11)
    scaled_close(dlogf, off[1], 4e-10)


def test_discrete_graphs_lump_too() -> None:
    # Two symmetric branches with a geometric stay: 1 ~ 2 and 3 ~ 4.
    edges = [(0, 1, 0.5, []), (0, 2, 0.5, []), (1, 3, 0.0, [0.3]), (2, 4, 0.0, [0.3]),
             (3, 9, 0.2, []), (4, 9, 0.2, [])]
    text, s = chain(edges, discrete=True)
    assert s.lumped_length == 2
    steps = np.arange(0, 40, dtype=float)
    theta = np.array([0.9])
    got = s.pdf(theta, steps)
    close(got, unlumped(lambda: s.pdf(theta, steps)), 1e-13)
    # the pmf by hand: geometric stays with exit 0.27 then 0.2, one step apart at least
    a, b = 1 - 0.27, 1 - 0.2
    k = steps.astype(int)
    want = np.array([sum(0.27 * a ** (i - 1) * 0.2 * b ** (m - i - 1) for i in range(1, m))
                     for m in k])
    close(got, want, 1e-13)
    close(got, ref.pmf(text, theta, steps), 1e-12)


# ---------------------------------------------------------------- errors


def messages(call) -> tuple[str, str]:
    """The error of call() with lumping and without."""
    out = []
    for fn in (call, lambda: unlumped(call)):
        with pytest.raises(ValueError) as info:
            fn()
        out.append(str(info.value))
    return out[0], out[1]


def test_a_negative_edge_hidden_in_a_lumped_sum_is_named() -> None:
    # 1 reaches the block {3, 4} at (1 + theta) + (1 - theta) = 2, as 2 does: 1 ~ 2. At
    # theta = 2 the edge 1 -> 4 has weight -1, though the lumped sum is fine.
    edges = [(0, 1, 0.5, []), (0, 2, 0.5, []), (1, 3, 1.0, [1.0]), (1, 4, 1.0, [-1.0]),
             (2, 3, 2.0, [0.0]), (3, 9, 1.0, []), (4, 9, 1.0, [])]
    s = chain(edges)[1]
    assert s.lumped_length == 2
    with_lumping, without = messages(lambda: s.pdf([2.0], [0.5, 1.0]))
    assert with_lumping == without
    assert "has weight -1" in with_lumping


def test_a_closed_class_is_named_by_the_graphs_own_vertices() -> None:
    # 1 <-> 2 and 3 <-> 4 all absorb at theta: one block. At theta = 0 the block's rate
    # out is 0, while each vertex still moves (rate 1): the graph's closed-class check
    # words the error, not the lumped vertex's "total out-rate 0".
    edges = [(0, 1, 0.5, []), (0, 3, 0.5, []), (1, 2, 1.0, []), (2, 1, 1.0, []),
             (3, 4, 1.0, []), (4, 3, 1.0, []), (1, 9, 0.0, [1.0]), (2, 9, 0.0, [1.0]),
             (3, 9, 0.0, [1.0]), (4, 9, 0.0, [1.0])]
    s = chain(edges)[1]
    assert s.lumped_length == 1
    for call in (lambda: s.pdf([0.0], [0.5]), lambda: s.log_pdf([0.0], [0.5])):
        with_lumping, without = messages(call)
        assert with_lumping == without
        assert "total out-rate 0" not in with_lumping


def test_bad_theta_reads_the_same_lumped() -> None:
    s = models.kingman(8).structure()
    for theta in ([float("nan")], [-1.0], [1.0, 2.0]):
        with_lumping, without = messages(lambda th=theta: s.pdf(th, [0.5]))
        assert with_lumping == without


def test_defect_and_edges_with_several_parameters() -> None:
    # Two symmetric branches (1 ~ 2, 3 ~ 4) whose rates mix both parameters, and a start
    # edge straight into absorption (a defect: mass absorbed at t = 0).
    edges = [(0, 1, 0.3, []), (0, 2, 0.3, []), (0, 9, 0.4, []),
             (1, 3, 0.5, [1.0, 0.25]), (2, 4, 0.5, [1.0, 0.25]),
             (1, 9, 0.0, [0.0, 2.0]), (2, 9, 0.0, [0.0, 2.0]),
             (3, 9, 1.0, [0.5, 0.0]), (4, 9, 1.0, [0.5, 0.0])]
    text, s = chain(edges, params=2)
    assert s.lumped_length == 2
    theta, t = np.array([0.8, 1.7]), np.linspace(0.02, 9.0, 35)
    close(s.pdf(theta, t), ref.pdf(text, theta, t), F_REL)
    close(s.cdf(theta, t), ref.cdf(text, theta, t), F_REL)
    logf, dlogf = log_pdf_and_grad(text, theta, t)
    off = unlumped(lambda: log_pdf_and_grad(text, theta, t))
    close(logf, off[0], 1e-12)
    scaled_close(dlogf, off[1], 1e-11)


def test_discrete_probabilities_over_one_read_the_same_lumped() -> None:
    # 1 ~ 2 and 3 ~ 4; at theta = 0.9 vertex 3's out-probabilities sum to 1.05.
    edges = [(0, 1, 0.5, []), (0, 2, 0.5, []), (1, 3, 0.0, [0.3]), (2, 4, 0.0, [0.3]),
             (3, 9, 0.15, [1.0]), (4, 9, 0.15, [1.0])]
    s = chain(edges, discrete=True)[1]
    assert s.lumped_length == 2
    assert np.all(np.isfinite(s.pdf([0.5], [1.0, 2.0, 3.0])))
    with_lumping, without = messages(lambda: s.pdf([0.9], [1.0, 2.0]))
    assert with_lumping == without
    assert "summing to 1.05" in with_lumping


def test_rate_forms_check_a_large_graph_as_its_edges_would() -> None:
    # Kingman n = 12 (~2,000 edges, a few dozen distinct forms): theta passes or fails
    # the form checks exactly as the edge-by-edge checks; 0 is a valid rate here, but
    # no state can leave at theta = 0.
    s = models.kingman(12).structure()
    for theta in ([1e-300], [3.0], [0.0], [-2.0], [np.inf]):
        got = []
        for fn in (lambda th=theta: s.pdf(th, [0.5]), lambda th=theta: unlumped(lambda: s.pdf(th, [0.5]))):
            try:
                got.append(("ok", fn()))
            except ValueError as error:
                got.append(("error", str(error)))
        assert got[0][0] == got[1][0], (theta, got)
        if got[0][0] == "error":
            assert got[0][1] == got[1][1]
