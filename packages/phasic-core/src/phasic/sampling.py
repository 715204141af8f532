"""Exact simulation of a graph's absorption time (`Graph.sample`).

Continuous graphs: Gillespie's algorithm. In vertex v the chain waits an
exponential time with rate w_v (the sum of v's out-weights at theta), then jumps to
target u with probability w_vu / w_v. Discrete graphs: each step in v leaves with
probability w_v (the rest, 1 - w_v, is a self-loop), so the number of steps spent in
v before it leaves is geometric with success probability w_v. The starting vertex
takes no time and picks its first vertex with probability w_0u / sum_u w_0u (start
weights are relative). A start edge into an absorbing vertex gives T = 0.

With rewards r, a sample is the reward accumulated until absorption: r_v times the
time (or number of steps) spent in v; with R reward vectors (rows of an (R, V)
matrix) a sample is the R totals of the same path. All samples advance together, one jump per
round, so the cost is numpy work per jump rather than Python work per sample.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

# relative slack for a discrete vertex's out-probabilities summing to slightly above 1
_PROBABILITY_SLACK = 1e-12


def _jump_table(
    weights: list[list[tuple[int, float]]], discrete: bool
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """(total out-weight per vertex, targets per vertex, cumulative jump probabilities)."""
    totals = np.zeros(len(weights))
    targets, cumulative = [], []
    for v, edges in enumerate(weights):
        to = np.array([dst for dst, _ in edges], dtype=np.int64)
        w = np.array([wt for _, wt in edges], dtype=np.float64)
        totals[v] = w.sum()
        if edges and totals[v] <= 0.0:
            where = "the starting vertex's" if v == 0 else f"vertex {v}'s"
            raise ValueError(
                f"{where} out-edges all have weight 0 at this theta, so the chain can never "
                "leave it; give it a positive weight (check theta and the coefficients)"
            )
        if discrete and v > 0 and totals[v] > 1.0 + _PROBABILITY_SLACK:
            raise ValueError(
                f"vertex {v}'s out-probabilities sum to {totals[v]} > 1 at this theta; a "
                "discrete graph's edge weights are probabilities"
            )
        targets.append(to)
        cumulative.append(np.cumsum(w) / totals[v] if edges else w)
    return totals, targets, cumulative


def _check_absorption(targets: list[np.ndarray], cumulative: list[np.ndarray]) -> None:
    """Every vertex reachable from the start must reach an absorbing vertex, else the
    simulation would never end."""
    n = len(targets)
    absorbing = [v for v in range(1, n) if targets[v].size == 0]
    feeds: list[list[int]] = [[] for _ in range(n)]
    for v in range(n):
        # only edges with positive probability count (a zero-weight edge is never taken)
        probs = np.diff(cumulative[v], prepend=0.0)
        for u in targets[v][probs > 0]:
            feeds[int(u)].append(v)
    can_end = np.zeros(n, dtype=bool)
    stack = list(absorbing)
    can_end[absorbing] = True
    while stack:
        for v in feeds[stack.pop()]:
            if not can_end[v]:
                can_end[v] = True
                stack.append(v)
    reached = np.zeros(n, dtype=bool)
    stack = [0]
    reached[0] = True
    while stack:
        v = stack.pop()
        probs = np.diff(cumulative[v], prepend=0.0)
        for u in targets[v][probs > 0]:
            if not reached[u]:
                reached[u] = True
                stack.append(int(u))
    stuck = np.flatnonzero(reached & ~can_end)
    if stuck.size:
        raise ValueError(
            f"vertex {int(stuck[0])} is reachable from the start but cannot reach an "
            f"absorbing vertex at this theta ({stuck.size} such vertices), so the "
            "absorption time is infinite; add a path to an absorbing vertex"
        )


def sample_absorption(
    weights: list[list[tuple[int, float]]],
    n: int,
    discrete: bool,
    rewards: np.ndarray | None,
    rng: np.random.Generator,
) -> np.ndarray:
    """`n` independent absorption times (or accumulated rewards).

    `weights[v]` lists vertex v's out-edges as (target, weight at theta); vertex 0 is
    the starting vertex; a vertex without out-edges is absorbing. `rewards`: None,
    one vector (V,) (result (n,)) or rows (R, V) (result (n, R), totals of one path).
    """
    totals, targets, cumulative = _jump_table(weights, discrete)
    if targets[0].size == 0:
        raise ValueError(
            "the starting vertex has no out-edges, so there is nothing to sample; add an "
            "edge from graph.starting_vertex() to the first state"
        )
    _check_absorption(targets, cumulative)
    rows = np.ones((1, len(weights))) if rewards is None else np.atleast_2d(rewards)
    reward = rows.T  # (V, R): one vertex's rewards together
    absorbing = np.array([t.size == 0 for t in targets])
    out = np.zeros((n, reward.shape[1]))
    current = np.zeros(n, dtype=np.int64)
    active = np.arange(n)
    while active.size:
        here = current[active]
        if discrete:
            stay = rng.geometric(np.where(here > 0, np.minimum(totals[here], 1.0), 1.0))
        else:
            stay = rng.exponential(1.0, active.size) / np.where(here > 0, totals[here], 1.0)
        out[active] += np.where((here > 0)[:, None], reward[here] * stay[:, None], 0.0)
        u = rng.random(active.size)
        nxt = np.empty(active.size, dtype=np.int64)
        for v in np.unique(here):
            at = here == v
            pick = np.searchsorted(cumulative[v], u[at], side="right")
            # guard against cumsum rounding leaving the last bound just below 1
            nxt[at] = targets[v][np.minimum(pick, targets[v].size - 1)]
        current[active] = nxt
        active = active[~absorbing[nxt]]
    return out if rewards is not None and np.ndim(rewards) == 2 else out[:, 0]


def reward_rows(graph: Any, rewards: Any) -> np.ndarray | None:
    """Rewards for `sample_absorption`: None (none given), a vector (V,) or rows (R, V),
    each row read as the graph reads one reward vector, every entry finite and >= 0."""
    arr = None if rewards is None else np.asarray(rewards)
    if arr is not None and arr.ndim == 2:
        if arr.shape[0] < 1:
            raise ValueError(f"rewards of shape (R, V) needs R >= 1 rows, got shape {arr.shape}")
        rows = np.stack([graph._rewards(row) for row in arr])
    else:
        rows = graph._rewards(rewards)
    if rows is not None:
        bad = np.argwhere(~np.isfinite(rows) | (rows < 0))
        if bad.size:
            where = ", ".join(str(int(i)) for i in bad[0])
            raise ValueError(f"rewards[{where}] is {rows[tuple(bad[0])]}; rewards must be "
                             "finite and >= 0")
    return rows


def check_sample_count(n: Any) -> int:
    """`n` as a non-negative int, or a clear error."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer):
        raise TypeError(f"n (the number of samples) must be an int, got {n!r}")
    if n < 0:
        raise ValueError(f"n (the number of samples) must be >= 0, got {n}")
    return int(n)


def check_seed(seed: Any) -> np.random.Generator:
    """A generator from `seed` (None: fresh entropy; an int >= 0; or a Generator)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0
    ):
        raise ValueError(f"seed must be None, an int >= 0 or a numpy Generator, got {seed!r}")
    return np.random.default_rng(seed)


def output_limit_bytes() -> int:
    """Bytes a sample's output may take: the machine's physical memory."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # no sysconf: a fixed 16 GiB
        return 16 << 30


def check_output_size(n_values: int, what: str) -> None:
    """A clear error, before anything is allocated, when `n_values` float64 values
    would not fit in memory."""
    need = n_values * 8
    limit = output_limit_bytes()
    if need > limit:
        raise ValueError(
            f"{what} would need {need / 2**30:.3g} GiB for its {n_values} float64 values, "
            f"more than this machine's {limit / 2**30:.3g} GiB of memory; draw fewer "
            "samples per call and combine the calls"
        )


def sample_graph(graph: Any, n: Any, theta: Any, rewards: Any, seed: Any,
                 validate_rewards: Any) -> np.ndarray:
    """`Graph.sample`: the arguments checked, then `sample_absorption`."""
    if not isinstance(validate_rewards, bool | np.bool_):
        raise TypeError(f"validate_rewards must be a bool, got {validate_rewards!r}")
    count, rng = check_sample_count(n), check_seed(seed)
    rows = reward_rows(graph, rewards)
    # the draws, the walk's per-sample state and one draw's rewards per sample
    check_output_size(count * ((1 if rows is None else rows.size // rows.shape[-1]) + 4),
                      "Graph.sample")
    weights = graph._edge_weights(graph._theta(theta))
    return sample_absorption(weights, count, graph.discrete, rows, rng)
