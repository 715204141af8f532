"""Batched callbacks: `Graph.from_callback(fn, state, batched=True)`.

A batched callback returns, for many states at once, what the per-state callback
returns state by state; the graph must be the same vertex for vertex (states, order,
edges, weights) at every batch size, and so must its distribution (checked against
the dense sub-intensity matrix). Bad returns give errors naming the array.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from core_graphs import dense_builder as dense

import phasic
from phasic import Graph, models


def two_island_batched(states: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`models.two_island_transitions` for a batch: coalescence in island 1, in island
    2, a migration 1 -> 2, 2 -> 1, in that order; theta = [coalescence, migration]."""
    n1, n2 = states[:, 0].astype(np.int64), states[:, 1].astype(np.int64)
    alive = (n1 + n2 > 1)[:, None]
    allowed = np.stack([n1 >= 2, n2 >= 2, n1 >= 1, n2 >= 1], axis=1) & alive
    coefs = np.zeros((len(states), 4, 2))
    coefs[:, 0, 0] = n1 * (n1 - 1) / 2
    coefs[:, 1, 0] = n2 * (n2 - 1) / 2
    coefs[:, 2, 1] = n1
    coefs[:, 3, 1] = n2
    moves = np.array([[-1, 0], [0, -1], [-1, 1], [1, -1]], dtype=np.int32)
    rows, kind = np.nonzero(allowed)
    return rows, states[rows] + moves[kind], coefs[rows, kind]


def dense_pdf(graph: Graph, theta: list[float], times: list[float]) -> np.ndarray:
    alpha, S, exit_, _ = dense(graph._builder, np.array(theta))
    return np.array([alpha @ scipy.linalg.expm(S * t) @ exit_ for t in times])


@pytest.mark.parametrize("n", [2, 6, 11])
@pytest.mark.parametrize("batch_size", [1, 3, 4096])
def test_kingman_batched_is_the_per_state_graph(n: int, batch_size: int) -> None:
    ipv = [n] + [0] * (n - 1)
    per_state = Graph.from_callback(models.kingman_transitions, ipv)
    batched = Graph.from_callback(models.kingman_batched_transitions, ipv, batched=True,
                                  batch_size=batch_size)
    assert batched.to_json() == per_state.to_json()
    built = models.kingman(n)  # the C++ builder's states are one entry shorter
    assert (batched.vertices_length(), batched.edges_length()) == (built.vertices_length(),
                                                                  built.edges_length())


def test_two_island_batched_same_graph_and_pdf() -> None:
    per_state = Graph.from_callback(models.two_island_transitions, [5, 0])
    batched = Graph.from_callback(two_island_batched, [5, 0], batched=True, batch_size=4)
    assert batched.to_json() == per_state.to_json()
    theta, times = [1.0, 0.35], [0.1, 0.7, 2.0, 6.0]
    got = batched.pdf(times, theta=theta)
    np.testing.assert_array_equal(got, per_state.pdf(times, theta=theta))
    np.testing.assert_allclose(got, dense_pdf(batched, theta, times), rtol=1e-10, atol=0)


def test_constant_weights_repeats_and_rows_in_any_order() -> None:
    # Births and deaths on 0..4 with constant rates, returned parent by parent in
    # reverse order and with each death split into two rows: the same graph as the
    # per-state callback (rows are taken parent by parent, repeats summed).
    def per_state(state):
        (k,) = state
        out = [[(k - 1,), 0.5 * k]] if k > 0 else []
        return out + [[(k + 1,), 1.0]] if k < 4 else out

    def batched(states):
        rows, nxt, w = [], [], []
        for r in reversed(range(len(states))):
            k = int(states[r, 0])
            if k == 0:
                continue  # absorbing
            rows += [r, r]
            nxt += [[k - 1], [k - 1]]
            w += [0.25 * k, 0.25 * k]
            if k < 4:
                rows.append(r)
                nxt.append([k + 1])
                w.append(1.0)
        return np.array(rows), np.array(nxt), np.array(w)

    def absorbing_at_zero(state):
        return [] if state[0] == 0 else per_state(state)

    want = Graph.from_callback(absorbing_at_zero, (2,))
    got = Graph.from_callback(batched, (2,), batched=True, batch_size=2)
    assert got.to_json() == want.to_json()
    times = [0.3, 1.0, 4.0]
    np.testing.assert_allclose(got.pdf(times), dense_pdf(got, [], times), rtol=1e-10, atol=0)


def test_discrete_kwargs_decorator_and_weighted_start() -> None:
    # A discrete walk down from k with probability p per step; keyword arguments reach
    # every call, the decorator gives the start, and a weighted start list works too.
    def step(states, *, p):
        rows = np.flatnonzero(states[:, 0] > 0)
        return rows, states[rows] - 1, np.full(rows.size, p)

    def step_one(state, *, p):
        return [[(int(state[0]) - 1,), p]] if state[0] > 0 else []

    start = [[(3,), 0.25], [(5,), 0.75]]
    want = Graph.from_callback(step_one, start, discrete=True, p=0.5)
    got = Graph.from_callback(step, start, discrete=True, batched=True, p=0.5)
    assert got.to_json() == want.to_json()
    decorated = phasic.callback(start)(step)
    assert Graph.from_callback(decorated, None, discrete=True, batched=True,
                               p=0.5).to_json() == want.to_json()


def one_state(returned):
    """A batched callback returning `returned` for state (2,), nothing afterwards."""
    def fn(states):
        return returned if states[0, 0] == 2 else (np.zeros(0, int), np.zeros((0, 1), int),
                                                   np.zeros(0))
    return fn


@pytest.mark.parametrize(("returned", "error", "message"), [
    ([[(1,), 1.0]], TypeError, r"must return \(rows, next_states, weights\).*a list of 1 items"),
    (None, TypeError, r"must return \(rows, next_states, weights\).*returned None"),
    ((np.array([0.0]), np.array([[1]]), np.array([1.0])), TypeError,
     r"rows must be an integer array, got dtype float64"),
    ((np.array([[0]]), np.array([[1]]), np.array([1.0])), ValueError,
     r"rows must have 1 dimension\(s\), got shape \(1, 1\)"),
    ((np.array([0]), np.array([1]), np.array([1.0])), ValueError,
     r"next_states must have 2 dimension\(s\)"),
    ((np.array([0]), np.array([[1, 0]]), np.array([1.0])), ValueError,
     r"next_states has shape \(1, 2\); it must be .* = \(1, 1\)"),
    ((np.array([0]), [[1], [0, 1]], np.array([1.0])), TypeError, r"next_states is not an array"),
    ((np.array([0]), np.array([[1]]), np.array([1.0, 2.0])), ValueError,
     r"weights has shape \(2,\); it must be \(1,\)"),
    ((np.array([0]), np.array([[1]]), np.array(["a"])), TypeError,
     r"weights must be a float array, got dtype <U1"),
    ((np.array([1]), np.array([[1]]), np.array([1.0])), ValueError,
     r"rows\[0\] = 1 is not a row of the 1 states it was given \(0 \.\. 0\)"),
    ((np.array([0]), np.array([[1]]), np.array([-1.0])), ValueError,
     r"weights\[0\] = -1.0 is negative"),
    ((np.array([0]), np.array([[1]]), np.array([[np.nan]])), ValueError,
     r"weights\[0\] = \[nan\] is not finite"),
    ((np.array([0]), np.array([[2**40]]), np.array([1.0])), ValueError,
     r"next_states\[0\] = \[1099511627776\] has entries outside int32"),
    ((np.array([0]), np.array([[2]]), np.array([1.0])), ValueError,
     r"transition 0 goes from state \[2\] to itself; leave self-transitions out"),
])
def test_bad_returns_name_the_array(returned, error, message) -> None:
    with pytest.raises(error, match=message):
        Graph.from_callback(one_state(returned), (2,), batched=True)


def test_bad_arguments_and_callback_errors() -> None:
    fn = models.kingman_batched_transitions
    with pytest.raises(ValueError, match=r"batch_size is for batched callbacks"):
        Graph.from_callback(models.kingman_transitions, [3, 0, 0], batch_size=10)
    with pytest.raises(ValueError, match=r"batch_size must be >= 1"):
        Graph.from_callback(fn, [3, 0, 0], batched=True, batch_size=0)
    with pytest.raises(TypeError, match=r"batch_size must be an int"):
        Graph.from_callback(fn, [3, 0, 0], batched=True, batch_size=2.5)
    with pytest.raises(TypeError, match=r"batched must be a bool"):
        Graph.from_callback(fn, [3, 0, 0], batched="yes")
    with pytest.raises(ValueError, match=r"a batched callback needs initial_state"):
        Graph.from_callback(fn, None, batched=True)

    def broken(states):
        raise KeyError("boom")

    with pytest.raises(KeyError) as info:
        Graph.from_callback(broken, [3, 0, 0], batched=True)
    assert "the 1 states of vertices 1 .. 1" in "".join(info.value.__notes__)
