"""Ready-made models: the Kingman coalescent and a cyclic two-island coalescent.

Time unit: theta[0] is the rate at which one given pair of lineages coalesces, so
theta = [1] gives the usual coalescent time units.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._ext import core
from .graph import Graph


def kingman(n: int) -> Graph:
    """The block-counting (SFS) state space of the Kingman coalescent for `n` samples.

    State entry i-1 counts the lineages that subtend i samples (i = 1..n-1); the chain
    starts with n singletons and is absorbed when one lineage remains. One parameter:
    theta[0], the pair-coalescence rate. 2 <= n <= 60: there is one state per integer
    partition of n (n = 50: 204,227 states; n = 60: 966,468; n = 200: ~4e12).
    """
    _check_n(n)
    return Graph._wrap(core().kingman(int(n)))


def kingman_transitions(state: Sequence[int]) -> list[tuple[tuple[int, ...], list[float]]]:
    """Transitions of the block-counting coalescent, for `Graph(callback, ipv)`.

    Two lineages subtending a and b samples merge into one subtending a + b, at rate
    (number of such pairs) · theta[0]. `state` is a sequence or numpy array of ints.
    """
    state = np.asarray(state).tolist()  # Python ints: faster to index than numpy scalars
    if sum(state) <= 1:
        return []
    out = []
    n = len(state)
    for a in range(1, n + 1):
        for b in range(a, n + 1 - a):
            ka, kb = state[a - 1], state[b - 1]
            pairs = ka * (ka - 1) // 2 if a == b else ka * kb
            if pairs == 0:
                continue
            nxt = list(state)
            nxt[a - 1] -= 1
            nxt[b - 1] -= 1
            nxt[a + b - 1] += 1
            out.append((tuple(nxt), [float(pairs)]))
    return out


def kingman_from_callback(n: int) -> Graph:
    """The same model as `kingman(n)`, built in Python from `kingman_transitions`."""
    _check_n(n)
    return Graph(kingman_transitions, [n] + [0] * (n - 1))


def _transient_states(graph: Graph) -> list[tuple[int, list[int]]]:
    """(index, state) of every vertex that is neither the start nor absorbing."""
    b = graph._builder
    return [(v, b.vertex_state(v)) for v in range(1, graph.vertices_length()) if b.out_edges(v)]


def kingman_samples(graph: Graph) -> int:
    """The sample size n of a block-counting coalescent graph (its first state is (n, 0, ...))."""
    first = graph._builder.out_edges(0)
    if len(first) != 1:
        raise ValueError("not a block-counting coalescent: the start must lead to one state")
    return int(graph._builder.vertex_state(first[0][0])[0])


def kingman_total_length_rewards(graph: Graph) -> np.ndarray:
    """Rewards making E[Y] the expected total branch length: the number of lineages."""
    rewards = np.zeros(graph.vertices_length())
    for v, state in _transient_states(graph):
        rewards[v] = sum(state)
    return rewards


def kingman_sfs_rewards(graph: Graph, i: int) -> np.ndarray:
    """Rewards making E[Y] the expected length of branches subtending `i` samples (2/i)."""
    n = kingman_samples(graph)
    if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 1 <= i < n:
        raise ValueError(f"i must be an int in 1..{n - 1} for a {n}-sample coalescent, got {i!r}")
    rewards = np.zeros(graph.vertices_length())
    for v, state in _transient_states(graph):
        rewards[v] = state[i - 1]
    return rewards


def two_island_transitions(
    state: Sequence[int],
) -> list[tuple[tuple[int, int], list[float]]]:
    """Transitions of a two-island coalescent: state (lineages in island 1, in island 2).

    theta = [coalescence rate per pair within an island, migration rate per lineage].
    Lineages migrate back and forth, so the graph is cyclic.
    """
    n1, n2 = (int(x) for x in state)
    if n1 + n2 <= 1:
        return []
    out: list[tuple[tuple[int, int], list[float]]] = []
    if n1 >= 2:
        out.append(((n1 - 1, n2), [n1 * (n1 - 1) / 2, 0.0]))
    if n2 >= 2:
        out.append(((n1, n2 - 1), [n2 * (n2 - 1) / 2, 0.0]))
    if n1 >= 1:
        out.append(((n1 - 1, n2 + 1), [0.0, float(n1)]))
    if n2 >= 1:
        out.append(((n1 + 1, n2 - 1), [0.0, float(n2)]))
    return out


def two_island(n: int) -> Graph:
    """Time to the MRCA of `n` lineages sampled in island 1 of a two-island model.

    theta = [within-island pair-coalescence rate, per-lineage migration rate]; cyclic.
    """
    _check_n(n)
    return Graph(two_island_transitions, [int(n), 0])


def _check_n(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n (the number of samples) must be an int, got {n!r}")
    if n < 2:
        raise ValueError(f"n (the number of samples) must be >= 2, got {n}")
