"""Ready-made models: the Kingman coalescent and a cyclic two-island coalescent.

Time unit: theta[0] is the rate at which one given pair of lineages coalesces, so
theta = [1] gives the usual coalescent time units. A population whose size changes
in time is a `SizeHistory`; `expected_sfs` gives the expected site frequency
spectrum under it, through the epochs of `phasic.epochs` (theta[e] = 1 / size of
epoch e).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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


def kingman_batched_transitions(
    states: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`kingman_transitions` for many states at once, for `Graph.from_callback(...,
    batched=True)`.

    `states` is a 2-d integer array, one block-counting state per row. Returns (rows,
    next_states, weights): for every state and every pair of lineage classes that can
    merge, in the order `kingman_transitions` lists them, the row of the state, the
    state after the merge and its coefficient (the number of such pairs, times
    theta[0]) as a (K, 1) array.
    """
    states = np.asarray(states)
    # Only classes that hold lineages can merge: pairs (i <= j) of each row's nonzero
    # entries, so the work follows the transitions, not n^2 / 4 classes per state.
    row, col = np.nonzero(states)  # row-major: each row's classes in increasing order
    held = states[row, col].astype(np.int64)
    per_row = np.bincount(row, minlength=states.shape[0])
    local = np.arange(row.size) - np.repeat(np.cumsum(per_row) - per_row, per_row)
    partners = per_row[row] - local  # j = i, i + 1, ... within the row
    i = np.repeat(np.arange(row.size), partners)
    j = i + np.arange(i.size) - np.repeat(np.cumsum(partners) - partners, partners)
    pairs = np.where(i == j, held[i] * (held[i] - 1) // 2, held[i] * held[j])
    keep = np.flatnonzero(pairs)
    i, j = i[keep], j[keep]
    rows = row[i]
    a, b = col[i], col[j]  # 0-based: classes a + 1 and b + 1 merge into a + b + 2
    next_states = states[rows]
    k = np.arange(rows.size)
    next_states[k, a] -= 1
    next_states[k, b] -= 1
    next_states[k, a + b + 1] += 1
    return rows, next_states, pairs[keep].astype(np.float64)[:, None]


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


def _is_traced(x: Any) -> bool:
    """True for a JAX tracer (values unknown until run time); jax is not imported here."""
    jax = sys.modules.get("jax")
    return jax is not None and isinstance(x, jax.core.Tracer)


@dataclass(frozen=True)
class SizeHistory:
    """A piecewise-constant population size, going back in time from the present.

    `sizes[e]` is the size during epoch e relative to a reference size (sizes[0] = 1
    is the usual choice, not a requirement); `times` are the E - 1 breakpoints
    0 < times[0] < ... in coalescent units of the reference size. The last size
    holds for ever. A pair of lineages coalesces at rate 1 / sizes[e] in epoch e,
    so the Kingman graph's theta is `theta()` = [[1 / sizes[e]]] and its epochs are
    `times`. Values may be JAX arrays (checked when concrete): `expected_sfs` is
    then differentiable in sizes and times.
    """

    sizes: Any
    times: Any = ()

    def __post_init__(self) -> None:
        sizes = self.sizes
        times = self.times
        if np.ndim(sizes) != 1 or np.shape(sizes)[0] == 0:
            raise ValueError(f"sizes must be a non-empty 1-D sequence of relative sizes, one "
                             f"per epoch, got shape {np.shape(sizes)}")
        if np.ndim(times) != 1 or np.shape(times)[0] != np.shape(sizes)[0] - 1:
            raise ValueError(
                f"times must be 1-D with one breakpoint between each pair of epochs: "
                f"{np.shape(sizes)[0] - 1} for {np.shape(sizes)[0]} sizes, got shape "
                f"{np.shape(times)}"
            )
        if not _is_traced(sizes):
            arr = np.asarray(sizes, dtype=np.float64)
            bad = np.flatnonzero(~np.isfinite(arr) | (arr <= 0))
            if bad.size:
                i = int(bad[0])
                raise ValueError(f"sizes[{i}] is {float(arr[i])!r}; sizes must be finite and > 0")
        if not _is_traced(times) and np.shape(times)[0]:
            from .epochs import check_epochs

            try:
                check_epochs(np.asarray(times, dtype=np.float64))
            except ValueError as exc:  # the same checks, under this argument's name
                raise ValueError(str(exc).replace("epochs[", "times[")) from None

    @property
    def n_epochs(self) -> int:
        return int(np.shape(self.sizes)[0])

    def theta(self) -> Any:
        """The Kingman graph's theta per epoch, shape (E, 1): pair-coalescence rate 1 / size."""
        if _is_traced(self.sizes) or not isinstance(self.sizes, (list, tuple, np.ndarray)):
            import jax.numpy as jnp

            return (1.0 / jnp.asarray(self.sizes, dtype=jnp.float64))[:, None]
        return (1.0 / np.asarray(self.sizes, dtype=np.float64))[:, None]


@functools.lru_cache(maxsize=8)
def _kingman_sfs(n: int) -> tuple[str, np.ndarray]:
    """The Kingman graph's JSON and its SFS reward matrix (n - 1, V), built once per n."""
    graph = kingman(n)
    rewards = np.stack([kingman_sfs_rewards(graph, i) for i in range(1, n)])
    return graph.to_json(), rewards


def expected_sfs(n: int, history: SizeHistory) -> Any:
    """E[L_i], i = 1..n-1: the expected total length of branches subtending i of n samples.

    Under the Kingman coalescent with the population sizes of `history` (a
    `SizeHistory`; time in coalescent units of the reference size). The expected
    site frequency spectrum is E[xi_i] = (theta_m / 2) E[L_i] for a population-
    scaled mutation rate theta_m; a constant size 1 gives E[L_i] = 2 / i. A float64
    JAX array of shape (n - 1,), differentiable in the history's sizes and times.
    """
    import jax
    import jax.numpy as jnp

    from .ffi import compute_moments_ffi

    _check_n(n)
    if not isinstance(history, SizeHistory):
        raise TypeError(f"history must be a phasic.models.SizeHistory, got "
                        f"{type(history).__name__}")
    text, rewards = _kingman_sfs(int(n))
    theta = jnp.asarray(history.theta(), dtype=jnp.float64)
    times = jnp.asarray(history.times, dtype=jnp.float64)
    epochs = times if history.n_epochs > 1 else None
    if epochs is None:
        theta = theta[0]

    def one(r: Any) -> Any:
        return compute_moments_ffi(text, theta, 1, rewards=r, epochs=epochs)[0]

    return jax.vmap(one)(jnp.asarray(rewards))
