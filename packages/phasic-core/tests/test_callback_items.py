"""The callback builder's C++ reader (`GraphBuilder.add_plain_transitions`).

It reads the common return forms in one call per state; every other form, and every
error, leaves the graph unchanged and returns -1 so that the Python reader handles
it. The graphs must be the same either way: same vertices, order, edges and weights.
"""

from __future__ import annotations

import numpy as np
import pytest

from phasic import Graph, models
from phasic._ext import core


def python_path(fn):
    """`fn` returning an iterator: the C++ reader declines it, the Python reader reads it."""
    return lambda state, **kw: iter(fn(state, **kw))


@pytest.mark.parametrize("n", [2, 5, 9])
def test_kingman_graph_is_the_same_on_both_paths(n: int) -> None:
    ipv = [n] + [0] * (n - 1)
    fast = Graph(models.kingman_transitions, ipv)
    slow = Graph(python_path(models.kingman_transitions), ipv)
    assert fast.to_json() == slow.to_json()
    built = models.kingman(n)
    assert (fast.vertices_length(), fast.edges_length()) == (built.vertices_length(),
                                                            built.edges_length())


def mixed_forms(state):
    """Every form the C++ reader takes, with duplicates to sum, from states (k, j)."""
    k, j = (int(x) for x in state)
    if k == 0:
        return []
    out = [
        (np.array([k - 1, j + 1], dtype=np.int64), 1.5),   # int64 array, float
        [[k - 1, j + 1], [0.25, 2]],                     # list state, coefficients
        ((k - 1, j + 1), 3),                             # tuple item, int weight
        [np.array([k - 1, j], dtype=np.int32), np.float64(0.5)],
        [[k - 1, j], []],                                # empty coefficients: weight 0
    ]
    return out


def test_mixed_forms_are_read_alike_and_summed() -> None:
    fast = Graph(mixed_forms, [3, 0])
    slow = Graph(python_path(mixed_forms), [3, 0])
    assert fast.to_json() == slow.to_json()
    # (3, 0) -> (2, 1): 1.5 + 3 plus coefficients [0.25, 2]; -> (2, 0): 0.5
    out = {tuple(fast.states()[dst]): (w, list(c))
           for dst, w, _, c in fast._builder.out_edges(1)}
    assert out == {(2, 1): (4.5, [0.25, 2.0]), (2, 0): (0.5, [])}


def one_vertex_builder() -> object:
    b = core().GraphBuilder(2, False)
    b.add_edge(0, b.find_or_create_vertex([1, 0]), 1.0, [])
    return b


@pytest.mark.parametrize("items", [
    [[[0, 1], 1.0]],
    ([(0, 1), [2.0, 0.5]],),
    [[np.array([0, 1], dtype=np.int32), 1]],
    [],
])
def test_common_forms_are_added_in_one_call(items) -> None:
    b = one_vertex_builder()
    assert b.add_plain_transitions(1, items) == len(items)
    assert b.vertices_length() == 2 + len(items) and b.edges_length() == 1 + len(items)


@pytest.mark.parametrize("items", [
    iter([[[0, 1], 1.0]]),                                # not a list or tuple
    [[[0, 1], 1.0], [[0, 2], 0.5, [1.0]]],                # a 3-item transition
    [[[0, 1], 1.0], [[0, 2], -1.0]],                      # negative weight
    [[[0, 1], 1.0], [[1, 0], 1.0]],                       # the state itself
    [[[0, 1], 1.0], [[0], 1.0]],                          # wrong length
    [[[0, 1], 1.0], [[0, 2**31], 1.0]],                   # beyond int32
    [[[0, 1], 1.0], [[0, True], 1.0]],                    # a bool entry
    [[[0, 1], 1.0], [np.array([0, 2], dtype=np.int16), 1.0]],
    [[[0, 1], 1.0], [[0, 2], float("nan")]],
    [[[0, 1], 1.0], [[0, 2], [1.0, float("inf")]]],
    [[[0, 1], 1.0], [[0, 2], "1.0"]],
    [[[0, 1], 1.0], [[0, 2], True]],
])
def test_other_forms_leave_the_graph_unchanged(items) -> None:
    b = one_vertex_builder()
    before = b.serialize()
    assert b.add_plain_transitions(1, items) == -1
    assert b.serialize() == before


def test_state_array_is_a_fresh_int32_copy() -> None:
    b = one_vertex_builder()
    a = b.state_array(1)
    assert a.dtype == np.int32 and a.tolist() == [1, 0]
    a[0] = 7
    assert b.vertex_state(1) == [1, 0] and b.state_array(1) is not a
