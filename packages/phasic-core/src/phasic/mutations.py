"""The distribution of mutation counts: `Graph.mutation_pmf` and the argument checks it
shares with the JAX function `phasic.compute_mutation_pmf_ffi` (phasic.mutation_ffi).

Mutations fall at rate μ (`mutation_rate`) per unit of reward: K | Y ~ Poisson(μ Y),
Y the reward accumulated until absorption. P(K = k), k = 0..kmax, is computed exactly
by the C++ kernel (mutation.cpp) as a discrete phase-type distribution: one
factorization of -S + μR on the structure's elimination plan and one sparse solve
per k. Each P(K = k) is exact; the values are not renormalized over 0..kmax, so
1 - sum is the (small, nonzero) probability of more than kmax mutations. On a
discrete graph every visit of vertex v adds Poisson(μ r_v) mutations.

This module does not import jax.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._ext import core


def check_kmax(kmax: Any) -> int:
    """`kmax` (the largest count) as an int in 0..max_mutation_count, or a clear error."""
    if isinstance(kmax, bool) or not isinstance(kmax, (int, np.integer)):
        raise TypeError(f"kmax (the largest mutation count) must be an int (static), got {kmax!r}")
    limit = core().max_mutation_count
    if not 0 <= kmax <= limit:
        raise ValueError(
            f"kmax (the largest mutation count) must be between 0 and {limit}, got {kmax} "
            "(the pmf costs one sparse solve per count 0..kmax)"
        )
    return int(kmax)


def check_reward_shape(shape: tuple[int, ...], vertices: int) -> bool:
    """Whether `shape` is one reward vector (V,) rather than rows (R, V); any other shape
    is a ValueError naming the expected ones."""
    if len(shape) == 1 and shape[0] == vertices:
        return True
    if len(shape) == 2 and shape[0] >= 1 and shape[1] == vertices:
        return False
    raise ValueError(
        f"rewards must have shape ({vertices},) (one entry per vertex, index 0 the "
        f"starting vertex) or (R, {vertices}) for R >= 1 reward vectors, got shape {shape}"
    )


def reward_rows(rewards: Any, vertices: int) -> tuple[np.ndarray | None, bool]:
    """(rewards as an (R, V) float64 array, or None for "the time itself", and whether
    one vector (V,) was given)."""
    if rewards is None:
        return None, True
    arr = np.asarray(rewards)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"rewards must be numeric, got dtype {arr.dtype}")
    single = check_reward_shape(arr.shape, vertices)
    return np.ascontiguousarray(arr.reshape(-1, vertices), dtype=np.float64), single


def mutation_rate_value(mutation_rate: Any) -> float:
    """A concrete mutation rate as a float (the kernel checks it is finite and >= 0)."""
    arr = np.asarray(mutation_rate)
    if arr.shape != () or arr.dtype.kind not in "fiu":
        raise TypeError(
            f"mutation_rate must be a number (mutations per unit of reward), got {mutation_rate!r}"
        )
    return float(arr)


def graph_mutation_pmf(graph: Any, mutation_rate: Any, rewards: Any, kmax: Any,
                       theta: Any) -> np.ndarray:
    """`Graph.mutation_pmf` (see there) for a graph, with every argument checked."""
    k = check_kmax(kmax)
    mu = mutation_rate_value(mutation_rate)
    v = graph.vertices_length()
    rows, single = reward_rows(rewards, v)
    if rows is None:
        rows = np.ones((1, v))
    th = graph._theta(theta)
    out, _ = graph.structure().mutation_pmf(th, mu, rows.reshape(-1), rows.shape[0], k)
    out = np.asarray(out).reshape(rows.shape[0], k + 1)
    return out[0] if single else out
