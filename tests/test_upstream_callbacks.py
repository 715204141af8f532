"""Building graphs from callbacks as upstream phasic does, checked against dense matrices.

`Graph(callback)` with `@phasic.callback(ipv)`, `Graph(callback, ipv=..., **kwargs)` and
`Graph(other)`. Each model's sub-intensity matrix S and initial vector alpha are also
written down here without phasic (by hand, or from an explicit list of states), and
the reference moments and densities come from numpy/scipy on them:
E[T^k] = k! alpha (-S)^-k 1 and f(t) = alpha expm(S t) (-S 1).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg

import phasic
from phasic import Graph

PDF_RTOL = 1e-10  # the kernels' guaranteed relative error for densities
TIMES = np.array([0.05, 0.4, 1.0, 2.5, 6.0])


def dense_moments(alpha: np.ndarray, S: np.ndarray, k: int) -> np.ndarray:
    """E[T^i], i = 1..k, of the phase-type distribution (alpha, S)."""
    U = np.linalg.inv(-S)
    out, v = [], np.ones(len(alpha))
    for i in range(1, k + 1):
        v = U @ v
        out.append(math.factorial(i) * alpha @ v)
    return np.array(out)


def dense_pdf(alpha: np.ndarray, S: np.ndarray, times: np.ndarray) -> np.ndarray:
    exit_rates = -S.sum(axis=1)
    return np.array([alpha @ scipy.linalg.expm(S * t) @ exit_rates for t in times])


def check_against_dense(g: Graph, theta: np.ndarray, alpha: np.ndarray, S: np.ndarray) -> None:
    np.testing.assert_allclose(g.moments(3, theta=theta), dense_moments(alpha, S, 3), rtol=1e-12)
    np.testing.assert_allclose(g.pdf(TIMES, theta=theta), dense_pdf(alpha, S, TIMES),
                               rtol=PDF_RTOL)


# -- rabbits on two islands ---------------------------------------------------------
# State [left, right]: rabbits on each island. A rabbit jumps to the other island at
# rate theta0; an island floods (all its rabbits drown) at rate theta1 (left) or theta2
# (right). [0, 0], both islands empty, is absorbing: an ordinary vertex, not the start.

RABBIT_THETA = np.array([1.3, 0.7, 2.1])


def rabbit_moves(state):
    left, right = state
    moves = []
    if left:
        moves.append([[left - 1, right + 1], [left, 0, 0]])
        moves.append([[0, right], [0, 1, 0]])
    if right:
        moves.append([[left + 1, right - 1], [right, 0, 0]])
        moves.append([[left, 0], [0, 0, 1]])
    return moves


rabbits = phasic.callback([2, 0])(rabbit_moves)

# The states in the order the builder meets them breadth-first (the order upstream
# phasic gives them too).
RABBIT_ORDER = [(2, 0), (1, 1), (0, 0), (0, 2), (0, 1), (1, 0)]


def rabbit_S(theta: np.ndarray) -> np.ndarray:
    """S by hand for theta = (j, a, b); rows and columns (2,0), (1,1), (0,2), (0,1), (1,0)."""
    j, a, b = theta
    return np.array([
        [-(2 * j + a), 2 * j, 0.0, 0.0, 0.0],
        [j, -(2 * j + a + b), j, a, b],
        [0.0, 2 * j, -(2 * j + b), 0.0, 0.0],
        [0.0, 0.0, 0.0, -(j + b), j],
        [0.0, 0.0, 0.0, j, -(j + a)],
    ])


def test_rabbits_states_in_breadth_first_order() -> None:
    g = Graph(rabbits)
    assert g.vertices_length() == 7 and g.param_length() == 3
    assert [tuple(s) for s in g.states()[1:]] == RABBIT_ORDER
    assert g.states().dtype == np.int32


def test_rabbits_moments_and_pdf_match_dense_reference() -> None:
    alpha = np.array([1.0, 0.0, 0.0, 0.0, 0.0])
    check_against_dense(Graph(rabbits), RABBIT_THETA, alpha, rabbit_S(RABBIT_THETA))


def test_rabbits_with_ipv_keyword_and_state_pairs() -> None:
    g = Graph(rabbit_moves, ipv=[[[2, 0], 0.25], [[1, 1], 0.75]])
    alpha = np.array([0.25, 0.75, 0.0, 0.0, 0.0])
    check_against_dense(g, RABBIT_THETA, alpha, rabbit_S(RABBIT_THETA))


def test_ipv_weights_are_relative() -> None:
    # 0.1 and 0.3 are normalized to 0.25 and 0.75 (start weights are relative).
    g = Graph(rabbit_moves, ipv=[[[2, 0], 0.1], [[1, 1], 0.3]])
    alpha = np.array([0.25, 0.75, 0.0, 0.0, 0.0])
    check_against_dense(g, RABBIT_THETA, alpha, rabbit_S(RABBIT_THETA))


def test_ipv_into_the_all_zero_absorbing_state_is_a_defect() -> None:
    g = Graph(rabbit_moves, ipv=[[[2, 0], 0.8], [[0, 0], 0.2]])
    assert [tuple(s) for s in g.states()[1:3]] == [(2, 0), (0, 0)]
    alpha = np.array([0.8, 0.0, 0.0, 0.0, 0.0])
    check_against_dense(g, RABBIT_THETA, alpha, rabbit_S(RABBIT_THETA))


def test_ipv_with_coefficients_depends_on_theta() -> None:
    # Start in (2,0) or (1,1) with weights theta0 and theta1: alpha = (j, a) / (j + a).
    g = Graph(rabbit_moves, ipv=[[[2, 0], [1.0, 0.0, 0.0]], [[1, 1], 0.0, [0.0, 1.0, 0.0]]])
    j, a, _ = RABBIT_THETA
    alpha = np.array([j, a, 0.0, 0.0, 0.0]) / (j + a)
    check_against_dense(g, RABBIT_THETA, alpha, rabbit_S(RABBIT_THETA))


def test_decorated_callback_called_directly() -> None:
    assert rabbits([]) == [[[2, 0], 1.0]]  # an empty state gives the initial transitions
    assert rabbits(np.array([0, 1], dtype=np.int32)) == rabbit_moves([0, 1])
    assert rabbits.__name__ == "rabbit_moves"


# -- a structured coalescent: two islands with migration ------------------------------
# State [k1, k2]: lineages in each island. Two lineages in island i coalesce at rate
# theta_i per pair (coefficients); a lineage migrates at the constant rates m12, m21
# passed as keyword arguments. Absorbed when one lineage is left: the MRCA.

COAL_THETA = np.array([1.0, 0.35])
M12, M21 = 0.4, 0.9


@phasic.callback([3, 0])
def structured(state, *, m12, m21):
    k1, k2 = (int(k) for k in state)
    if k1 + k2 == 1:
        return []
    moves = []
    if k1 >= 2:
        moves.append([[k1 - 1, k2], [k1 * (k1 - 1) / 2, 0.0]])
    if k2 >= 2:
        moves.append([[k1, k2 - 1], [0.0, k2 * (k2 - 1) / 2]])
    if k1:
        moves.append([[k1 - 1, k2 + 1], k1 * m12])
    if k2:
        moves.append([[k1 + 1, k2 - 1], k2 * m21])
    return moves


def structured_dense(theta: np.ndarray, start: dict) -> tuple[np.ndarray, np.ndarray]:
    """alpha and S over the states with 2 or 3 lineages, written from the model's rules."""
    states = [(k1, total - k1) for total in (3, 2) for k1 in range(total, -1, -1)]
    row = {s: i for i, s in enumerate(states)}
    S = np.zeros((len(states), len(states)))
    for (k1, k2), i in row.items():
        rates = {
            (k1 - 1, k2): theta[0] * k1 * (k1 - 1) / 2,
            (k1, k2 - 1): theta[1] * k2 * (k2 - 1) / 2,
            (k1 - 1, k2 + 1): M12 * k1,
            (k1 + 1, k2 - 1): M21 * k2,
        }
        for target, rate in rates.items():
            S[i, i] -= rate
            if target in row:
                S[i, row[target]] += rate
    alpha = np.zeros(len(states))
    for s, p in start.items():
        alpha[row[s]] = p
    return alpha, S


def test_structured_coalescent_matches_dense_reference() -> None:
    g = Graph(structured, m12=M12, m21=M21)
    # 7 transient states, 2 absorbing (one lineage in either island), the start
    assert g.vertices_length() == 10 and g.param_length() == 2
    alpha, S = structured_dense(COAL_THETA, {(3, 0): 1.0})
    check_against_dense(g, COAL_THETA, alpha, S)


def test_structured_coalescent_from_callback_with_kwargs() -> None:
    g = Graph.from_callback(structured.__wrapped__, [2, 1], m12=M12, m21=M21)
    alpha, S = structured_dense(COAL_THETA, {(2, 1): 1.0})
    check_against_dense(g, COAL_THETA, alpha, S)


@pytest.mark.parametrize("ipv", [[3, 0], (3, 0), np.array([3, 0]), [[[3, 0], 1.0]]],
                         ids=["list", "tuple", "array", "pairs"])
def test_every_single_state_ipv_form_builds_the_same_graph(ipv) -> None:
    reference = Graph(structured, m12=M12, m21=M21)
    g = Graph(structured.__wrapped__, ipv, m12=M12, m21=M21)
    np.testing.assert_array_equal(g.states(), reference.states())
    np.testing.assert_array_equal(g.moments(2, theta=COAL_THETA),
                                  reference.moments(2, theta=COAL_THETA))


def test_ipv_returned_for_an_empty_state() -> None:
    def moves_and_start(state, **kwargs):
        if len(state) == 0:
            return [[[3, 0], 1.0]]
        return structured(state, **kwargs)

    g = Graph(moves_and_start, m12=M12, m21=M21)
    np.testing.assert_array_equal(g.states(), Graph(structured, m12=M12, m21=M21).states())


# -- the state contract, weights and merging ----------------------------------------


def test_callback_gets_a_fresh_int32_array_it_may_change() -> None:
    seen = []

    def count_up(state):
        seen.append((type(state), state.dtype, state.shape))
        if state[0] >= 4:
            return []
        state[0] += 1  # changing the array in place and returning it is allowed
        return [[state, 2.0]]

    g = Graph(count_up, ipv=[1])
    assert seen == [(np.ndarray, np.dtype(np.int32), (1,))] * 4
    assert [tuple(s) for s in g.states()] == [(0,), (1,), (2,), (3,), (4,)]
    assert g.moments(1, theta=None)[0] == pytest.approx(3 / 2.0, rel=1e-14)


def test_duplicate_transitions_are_summed_into_one_edge() -> None:
    def fn(state):
        if state[0] == 2:
            return []
        # three routes to [2]: 0.5 + 1.5 theta0 + (0.25 + theta0 + 2 theta1)
        return [[[2], 0.5], [[2], [1.5]], [[2], 0.25, [1.0, 2.0]]]

    g = Graph(fn, ipv=[1])
    assert g.edges_length() == 2  # the start edge and one merged edge
    theta = np.array([0.6, 0.3])
    rate = 0.5 + 1.5 * 0.6 + 0.25 + 0.6 + 2 * 0.3
    np.testing.assert_allclose(g.moments(2, theta=theta), [1 / rate, 2 / rate**2], rtol=1e-14)


def test_three_item_transitions_use_the_base() -> None:
    # [next, base, c]: weight base + c . theta (upstream 0.32.1 drops the base).
    g = Graph(lambda s: [] if s[0] == 2 else [[[2], 0.75, [2.0]]], ipv=[1])
    theta = np.array([0.5])
    assert g.moments(1, theta=theta)[0] == pytest.approx(1 / (0.75 + 1.0), rel=1e-14)


def test_discrete_graph_from_callback() -> None:
    g = Graph(lambda s: [] if s[0] == 2 else [[[2], 0.25]], ipv=[1], discrete=True)
    assert g.discrete
    np.testing.assert_allclose(g.pmf(np.array([1, 2, 3]), theta=None),
                               [0.25, 0.75 * 0.25, 0.75**2 * 0.25], rtol=1e-14)


def test_graph_of_a_graph_is_an_independent_copy() -> None:
    original = Graph(structured, m12=M12, m21=M21)
    copy = Graph(original)
    np.testing.assert_array_equal(copy.states(), original.states())
    np.testing.assert_array_equal(copy.moments(3, theta=COAL_THETA),
                                  original.moments(3, theta=COAL_THETA))
    copy.find_or_create_vertex([5, 5])
    assert copy.vertices_length() == 11 and original.vertices_length() == 10


# -- bad input: clear errors naming the state and the returned item -----------------


def one_move(move):
    """A callback from [1] that returns `move` as its only transition."""
    return lambda state: [move] if state[0] == 1 else []


@pytest.mark.parametrize(("move", "error", "message"), [
    ([[1], 1.0], ValueError, r"transitions from state \[1\] include the state itself"),
    ([[2, 0], 1.0], ValueError, r"from state \[1\]: item \[\[2, 0\], 1\.0\]: .*length 2.*length 1"),
    ([[2], "fast"], TypeError, r"from state \[1\]: item \[\[2\], 'fast'\]: an edge weight must be"),
    ([[2], -0.5], ValueError, r"from state \[1\]: item \[\[2\], -0\.5\] has the negative weight"),
    ([[2], float("nan")], ValueError, r"from state \[1\]: item \[\[2\], nan\]: .*finite"),
    ([[2], [1.0, float("inf")]], ValueError, r"item \[\[2\], \[1\.0, inf\]\]: .*finite"),
    ([[2.5], 1.0], TypeError, r"from state \[1\]: item \[\[2\.5\], 1\.0\]: state entries must be ints"),
    ([[2], True], TypeError, r"item \[\[2\], True\]: .*not a bool"),
    ([[2], [1.0], [1.0]], TypeError, r"the base must be a float"),
    ([[2], 1.0, 2.0], TypeError, r"the last entry must be the coefficient list"),
    ([[2], 1.0, [1.0], 4], TypeError, r"from state \[1\]: \[\[2\], 1\.0, \[1\.0\], 4\] is not a transition"),
    (3.0, TypeError, r"from state \[1\]: 3\.0 is not a transition"),
    ([[2**40], 1.0], ValueError, r"from state \[1\]: state \(1099511627776,\) .*32 bits"),
], ids=["self", "length", "string", "negative", "nan", "inf-coefficient", "float-state",
        "bool", "list-base", "number-coefficients", "four-items", "number", "int32"])
def test_bad_transitions(move, error, message) -> None:
    with pytest.raises(error, match=message):
        Graph(one_move(move), ipv=[1])


def test_bad_return_values() -> None:
    with pytest.raises(TypeError, match=r"from state \[1\]: the callback must return a list"):
        Graph(lambda state: None, ipv=[1])


def test_exceptions_of_the_callback_name_the_state() -> None:
    def broken(state):
        return [] if state[0] == 2 else [[[2], 1.0 / 0.0]]

    with pytest.raises(ZeroDivisionError) as info:
        Graph(broken, ipv=[1])
    assert "(raised by the graph callback for state [1])" in info.value.__notes__
    with pytest.raises(TypeError, match="m21"):  # a missing keyword argument
        Graph(structured, m12=M12)


@pytest.mark.parametrize(("ipv", "error", "message"), [
    ([], ValueError, r"initial distribution \(ipv\) is empty"),
    ([[[2, 0], 0.0]], ValueError, r"weights of the initial distribution \(ipv\) sum to 0"),
    ([[[2, 0], -1.0], [[1, 1], 2.0]], ValueError, r"ipv\): item \[\[2, 0\], -1\.0\] has the negative"),
    ([[[2, 0], 0.5], [[1], 0.5]], ValueError, r"ipv\): item \[\[1\], 0\.5\]: .*length 1.*length 2"),
    ("2,0", TypeError, r"must be a state such as \[2, 0\]"),
    ([[[], 1.0]], ValueError, r"with non-empty states"),
], ids=["empty", "zero-sum", "negative", "lengths", "string", "empty-state"])
def test_bad_ipv(ipv, error, message) -> None:
    with pytest.raises(error, match=message):
        Graph(rabbit_moves, ipv=ipv)
    with pytest.raises(error, match=message):
        phasic.callback(ipv)  # the decorator checks ipv when it is applied


def test_missing_or_doubled_ipv() -> None:
    with pytest.raises(ValueError, match=r"no initial distribution: pass ipv=.*raised ValueError"):
        Graph(rabbit_moves)  # unpacking an empty state fails: no ipv anywhere
    with pytest.raises(ValueError, match=r"no initial distribution.*returned \[\]"):
        Graph(lambda state: [])
    with pytest.raises(ValueError, match="already gives the initial distribution"):
        Graph(rabbits, ipv=[2, 0])


def test_graph_constructor_errors() -> None:
    with pytest.raises(TypeError, match="state_length must be an int"):
        Graph("2")
    with pytest.raises(ValueError, match=r"Graph\(\) got ipv with a state length"):
        Graph(2, ipv=[1, 0])
    with pytest.raises(ValueError, match=r"Graph\(\) got rate with a state length"):
        Graph(2, rate=1.0)
    small = Graph(structured, m12=M12, m21=M21)
    with pytest.raises(ValueError, match=r"Graph\(\) got ipv with a Graph to copy"):
        Graph(small, ipv=[2, 0])
    with pytest.raises(ValueError, match="do not pass a different discrete="):
        Graph(small, discrete=True)
    with pytest.raises(TypeError, match="discrete must be a bool"):
        Graph(rabbits, discrete="yes")
    with pytest.raises(TypeError, match="decorates a function"):
        phasic.callback([1])(3)
